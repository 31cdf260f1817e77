"""Import mesa without the stack walks its import makes.

``mesa.model`` names its logger from ``inspect.stack()`` and its ``Model.__init__``
logger from ``inspect.getouterframes()``, which read the source of every frame on the
import stack and, for each frame, scan every loaded module (``inspect.getmodule``): some
0.3 s of each run's start-up, for names that need only the frames. While mesa loads,
both return the frames without their source lines, and a frame's module is looked up
by its name; the names come out the same (``MESA.mesa.model``, ``Model``).
"""

from __future__ import annotations

import inspect
import sys
from types import FrameType, ModuleType


def _bare_outer_frames(frame: FrameType | None, context: int = 1) -> list[inspect.FrameInfo]:
    """``inspect.getouterframes(frame)`` without source lines (``code_context`` None)."""
    frames = []
    while frame is not None:
        code = frame.f_code
        frames.append(
            inspect.FrameInfo(frame, code.co_filename, frame.f_lineno, code.co_name, None, None)
        )
        frame = frame.f_back
    return frames


def _bare_stack(context: int = 1) -> list[inspect.FrameInfo]:
    """``inspect.stack()`` without source lines."""
    return _bare_outer_frames(sys._getframe(1), context)


def _module_of(obj: object, _filename: str | None = None) -> ModuleType | None:
    """``inspect.getmodule``, but a frame's module by its globals' ``__name__``, without
    the scan of every loaded module's file."""
    if isinstance(obj, FrameType):
        return sys.modules.get(obj.f_globals.get("__name__", ""))
    return _getmodule(obj, _filename)


_getmodule = inspect.getmodule


def load_mesa() -> ModuleType:
    """The ``mesa`` package, imported (if it is not yet) with the bare frame walks and
    :func:`_module_of` standing in for their ``inspect`` originals."""
    if "mesa" not in sys.modules:
        saved = inspect.stack, inspect.getouterframes, inspect.getmodule
        inspect.stack, inspect.getouterframes = _bare_stack, _bare_outer_frames
        inspect.getmodule = _module_of
        try:
            import mesa  # noqa: F401
        finally:
            inspect.stack, inspect.getouterframes, inspect.getmodule = saved
    return sys.modules["mesa"]


mesa = load_mesa()
