"""The model's table of steps: mesa's DataCollector, without a deep copy per value."""

from __future__ import annotations

import types
from typing import Any

import mesa


class StepRecords(mesa.DataCollector):
    """mesa's ``DataCollector`` for reporters that are functions of the model returning
    numbers or strings.

    mesa's ``collect`` deep-copies every value a reporter returns, so that a list or array
    kept by reference cannot change under a later step: for the model's 29 columns about
    100 us a step in a run. The model's reporters return floats, ints and strings, which
    no later step can change, so once mesa has validated them (its ``collect`` on the first
    step) each value is appended as it is. Any other kind of reporter (an attribute name,
    a bound method, a ``[function, args]`` pair) or any agent reporter sends the step
    through mesa's ``collect`` again. A test holds the table to mesa's.
    """

    def collect(self, model: Any) -> None:
        """Record each model reporter's value for ``model``'s last step."""
        reporters = self.model_reporters
        if (
            not self._validated
            or self.agent_reporters
            or self.agenttype_reporters
            or not all(isinstance(r, types.FunctionType) for r in reporters.values())
        ):
            super().collect(model)
            return
        self._collection_steps.append(model.time)
        columns = self.model_vars
        for name, reporter in reporters.items():
            columns[name].append(reporter(model))
