"""The market: universe, order book kernel, clearing house, indices and MarketModel."""

from typing import Any

from model.config import ConfigError, ScenarioConfig

__all__ = ["ConfigError", "MarketModel", "ScenarioConfig"]


def __getattr__(name: str) -> Any:
    # MarketModel imports agents/, which import model.config: loading it lazily keeps
    # ``import agents.x`` working on its own (no circular import).
    if name == "MarketModel":
        from model.market_model import MarketModel

        return MarketModel
    raise AttributeError(name)
