"""Scenarios, runs, sweeps and reports: everything that drives the model."""
