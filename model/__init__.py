"""The market: universe, order book kernel, clearing house, indices and MarketModel."""

from model.config import ConfigError, ScenarioConfig
from model.market_model import MarketModel

__all__ = ["ConfigError", "MarketModel", "ScenarioConfig"]
