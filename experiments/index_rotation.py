"""Where the micro-cap index's gains come from: its members' moves, its daily equal
weights, and the names it takes in and lets go.

The micro-cap index weighs its members equally, resets the weights every morning and
re-picks the smallest caps every few days (model/indices.py). A day's log change of it
is the log of its members' mean gross return since the close before, which splits into
their mean log return and what averaging adds (never below zero: it grows with how far
the members' returns spread). Added up over a span, the members' mean log returns are
what the names earned while they were members: a name that enters after falling below
its value and leaves after being bid back above it adds to the index what no fixed set
of stocks shows. The news twin (the same members on fundamental values) splits the same
way, so what the news made can be set apart.

``IndexRotation`` is a progress callback (``MarketModel.run(progress=...)``, or called
after each ``model.step()``); ``summary()`` sums its days, ``frame()`` lists them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from model.market_model import MarketModel


class IndexRotation:
    """Day by day, the micro-cap index's log change split into its members' mean log
    return and the equal weights' part, with the names it took in and let go."""

    def __init__(
        self, model: MarketModel, start: dt.date | None = None, end: dt.date | None = None
    ) -> None:
        """Observe ``model`` from its state now, which must be a close (or the start);
        count only the days from ``start`` to ``end`` (inclusive; None: no bound)."""
        if model.steps % model.steps_per_day:
            raise ValueError(
                f"IndexRotation: built at step {model.steps}, inside a day of "
                f"{model.steps_per_day} steps; build it at a close or before the first step"
            )
        if start is not None and end is not None and start > end:
            raise ValueError(f"IndexRotation: start {start} is after end {end}")
        n = model.universe.n
        self.start, self.end = start, end
        self.price = model.market.last[:n].astype(np.float64)  # (S,) fen, the last close
        self.value = model.fundamentals.value_fen()[:n].astype(np.float64)  # (S,) fen
        self.members = model.indices.micro.copy()  # (S,) bool, the day's (after its re-pick)
        self.days: list[dict[str, Any]] = []
        self._today: dict[str, Any] = {}

    def __call__(self, model: MarketModel) -> None:
        """Call after every step: a day's first step brings its open, its last its close."""
        if self.end is not None and model.date > self.end:
            return  # past the span: nothing more to count
        spd = model.steps_per_day
        if (model.steps - 1) % spd == 0:  # the day's first step: its open has run
            self._open(model)
        if model.steps % spd == 0:
            self._close(model)

    def _open(self, model: MarketModel) -> None:
        """The news moved at the open, on yesterday's members; then the re-pick."""
        n = model.universe.n
        value = model.fundamentals.value_fen()[:n].astype(np.float64)  # (S,)
        news = np.log(value[self.members] / self.value[self.members])  # (M,)
        members = model.indices.micro.copy()
        entering, leaving = members & ~self.members, self.members & ~members
        mispricing = np.log(self.price / self.value)  # (S,) at yesterday's close
        self._today = {
            "news_log": float(np.log(np.mean(np.exp(news)))),
            "news_members_log": float(news.mean()),
            "entered": int(entering.sum()),
            "left": int(leaving.sum()),
            "entering_mispricing": float(mispricing[entering].sum()),
            "leaving_mispricing": float(mispricing[leaving].sum()),
        }
        self.value, self.members = value, members

    def _close(self, model: MarketModel) -> None:
        """The day's price move, on the day's members."""
        n = model.universe.n
        price = model.market.last[:n].astype(np.float64)  # (S,)
        moves = np.log(price[self.members] / self.price[self.members])  # (M,)
        self.price = price
        if self.start is None or model.date >= self.start:  # days past end stop in __call__
            self.days.append(
                {
                    "date": model.date,
                    "index_log": float(np.log(np.mean(np.exp(moves)))),
                    "members_log": float(moves.mean()),
                    "dispersion": float(moves.std()),
                    **self._today,
                }
            )

    def frame(self) -> pd.DataFrame:
        """One row a day: the index's log change, its members' mean log return and the
        equal weights' part (the difference); the news twin's log change and its members'
        mean; the names entering and leaving at the morning's re-pick (counts, and their
        log price over value at the close before, summed); the members' cross-section
        s.d. of log returns."""
        frame = pd.DataFrame(self.days)
        if not frame.empty:
            frame["equal_weights_log"] = frame["index_log"] - frame["members_log"]
        return frame

    def summary(self) -> dict[str, Any]:
        """The span's sums: log changes and their parts, the names that entered and
        left, their mean log price over value when they did, the mean dispersion."""
        frame = self.frame()
        if frame.empty:
            return {"days": 0}
        total = frame.sum(numeric_only=True)
        return {
            "first": frame["date"].iloc[0].isoformat(),
            "last": frame["date"].iloc[-1].isoformat(),
            "days": len(frame),
            "index": float(np.expm1(total["index_log"])),
            "index_log": float(total["index_log"]),
            "members_log": float(total["members_log"]),
            "equal_weights_log": float(total["equal_weights_log"]),
            "news": float(np.expm1(total["news_log"])),
            "news_log": float(total["news_log"]),
            "news_members_log": float(total["news_members_log"]),
            "entered": int(total["entered"]),
            "left": int(total["left"]),
            "entering_mispricing": _mean(total["entering_mispricing"], total["entered"]),
            "leaving_mispricing": _mean(total["leaving_mispricing"], total["left"]),
            "dispersion": float(frame["dispersion"].mean()),
        }


def _mean(total: float, count: float) -> float | None:
    """``total / count``, or None where nothing was counted (no name entered or left)."""
    return float(total / count) if count else None
