"""The cyclic garbage collector held off around work that allocates long-lived objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the garbage collector off, and give it back as it was.

    Set-up allocates objects that live as long as the model or the process (Mesa agents,
    the social graph; for ``unwind run`` also its imports: mesa with scipy and networkx,
    pandas, numba's typing tables); collections while they pile up, and each full one
    after, pass over them and free nothing.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
