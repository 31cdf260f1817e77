"""Agent types of microcap-unwind, each a Mesa agent backed by arrays."""
