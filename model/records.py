"""The model's table of steps: mesa's DataCollector, filled a row at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mesa


class StepRecords(mesa.DataCollector):
    """mesa's ``DataCollector`` of the model's reporters, filled from one read-out a step.

    mesa's ``collect`` calls each reporter in turn, checks its kind and deep-copies what
    it returns: for the model's 29 columns some 100 us a step in a run, besides the
    read-outs themselves. Here ``row(model)`` returns the whole step's values at once, in
    the reporters' order and as the reporters give them (a test holds the two equal), and
    each is appended as it is: floats, ints, strings and numpy scalars, nothing that a
    later step could change. The first step goes through mesa's ``collect`` (which
    validates the reporters), and so does every step once the reporters are not the ones
    the records were made with, or agent reporters are added.
    """

    def __init__(
        self, model_reporters: dict[str, Any], row: Callable[[Any], tuple[Any, ...]]
    ) -> None:
        super().__init__(model_reporters=model_reporters)
        self._row = row
        self._names = tuple(model_reporters)

    def collect(self, model: Any) -> None:
        """Record ``model``'s row (the reporters' values for its last step)."""
        if (
            not self._validated
            or self.agent_reporters
            or self.agenttype_reporters
            or tuple(self.model_reporters) != self._names
        ):
            super().collect(model)
            return
        self._collection_steps.append(model.time)
        columns = self.model_vars
        for name, value in zip(self._names, self._row(model), strict=True):
            columns[name].append(value)
