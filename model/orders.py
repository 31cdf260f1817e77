"""Order arrays: what every agent type hands to the market, one row per order."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numba
import numpy as np

# How far through the last price a calm market order is priced (within the day's limits):
# an A-share market order walks the book a few levels and its remainder is cancelled, it
# does not rest at the limit, where under the auction's rule (a side left over at its
# margin sets the price) any surplus of them would run the price to the limit.
MARKET_ORDER_REACH = 0.03

# Why an order must trade (``Orders.duress``): not at all, because of a risk line, a margin
# call, a buy-in or a redemption (a forced sale, the model's deleveraging), or because a
# retail investor panics. The market counts the fills of each kind apart.
CALM, FORCED, PANIC = 0, 1, 2
N_DURESS = 3


@numba.njit(cache=True, nogil=True, inline="always")
def market_order_price(last: int, side: int, lower: int, upper: int) -> int:
    """A calm market order's price in fen: ``MARKET_ORDER_REACH`` through the ``last``
    price, to the nearest fen, held within the day's ``lower`` and ``upper`` limits."""
    through = np.int64(np.rint(last * (1.0 + side * MARKET_ORDER_REACH)))
    return min(upper, through) if side > 0 else max(lower, through)


@dataclass(frozen=True)
class Orders:
    """A batch of limit orders. An order meant to trade now is a limit order through the
    last price: ``MARKET_ORDER_REACH`` through it for the noise traders and retail (their
    panic sales too), ``neutral.forced_discount`` through it for the quant products' forced
    sales, buy-ins and hedge covers, and at the day's limit for the public funds' forced
    sales, the arbitrageurs' buy-ins and the snowball issuers' futures (the speculators'
    too, unless ``speculators.max_basis`` holds them nearer the index).

    ``duress`` says why an order must trade: ``FORCED`` for the stock orders sent because
    of a risk line, a margin call, a buy-in or a redemption, ``PANIC`` for a retail
    investor's panic sale, ``CALM`` otherwise. It rides with each order onto the book, so
    the market can count what of each kind fills (``Market.forced_turnover``, the model's
    forced sales, and ``Market.panic_turnover``) in the step it fills, not what was sent.
    None: every order is calm.
    """

    account: np.ndarray  # (n,) int64 ledger account
    stock: np.ndarray  # (n,) int64
    side: np.ndarray  # (n,) int8, +1 buy, -1 sell
    price: np.ndarray  # (n,) int64 limit price in fen
    lots: np.ndarray  # (n,) int64 board lots, > 0
    duress: np.ndarray | None = None  # (n,) int8: CALM, FORCED or PANIC (stock orders only)

    def __post_init__(self) -> None:
        for name, dtype in _DTYPES:
            value = getattr(self, name)
            if value is None:  # ``duress`` left out: every order is calm (``account`` is set)
                object.__setattr__(self, name, np.zeros(self.account.shape[0], dtype))
            elif not (isinstance(value, np.ndarray) and value.dtype == dtype):
                object.__setattr__(self, name, np.asarray(value, dtype=dtype))

    def __len__(self) -> int:
        return self.account.shape[0]

    def columns(self) -> tuple[np.ndarray, ...]:
        """(account, stock, side, price, lots): the arrays a compiled pass takes.

        Spelled out: ``dataclasses.fields`` costs more than the five reads, and this is
        asked some twenty times a step.
        """
        return self.account, self.stock, self.side, self.price, self.lots

    @classmethod
    def empty(cls) -> Orders:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z, z, z)

    @classmethod
    def concat(cls, batches: list[Orders]) -> Orders:
        """One batch holding ``batches`` in the given order (earlier = higher time priority)."""
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        return cls(
            *map(np.concatenate, zip(*((*b.columns(), b.duress) for b in batches), strict=True))
        )

    def select(self, mask: np.ndarray) -> Orders:
        """The rows where ``mask`` is true (or the rows at the given indices)."""
        at = np.flatnonzero(mask) if mask.dtype == bool else mask  # found once, not per column
        return Orders(
            self.account[at],
            self.stock[at],
            self.side[at],
            self.price[at],
            self.lots[at],
            self.duress[at],
        )

    def with_lots(self, lots: np.ndarray) -> Orders:
        """Same orders with new sizes; rows with no lots left are dropped."""
        keep = np.flatnonzero(lots > 0)
        return Orders(
            self.account[keep],
            self.stock[keep],
            self.side[keep],
            self.price[keep],
            lots[keep],
            self.duress[keep],
        )


_DTYPES = tuple(
    (f.name, np.dtype(t))
    for f, t in zip(
        fields(Orders), (np.int64, np.int64, np.int8, np.int64, np.int64, np.int8), strict=True
    )
)
