"""Ahead-of-time builds of the compiled passes a run calls from Python.

numba loads a cached pass into LLVM at its first call in each process: the first load
sets up numba's typing and lowering registries (some 0.26 s), each further pass costs
3-30 ms, about 0.5 s of every ``unwind run`` for its 36 passes. ``make warm`` (``python
-m experiments.warm``) also builds those passes, for the argument types ``unwind run jan2024``
hands them, into one extension module with ``numba.pycc``. The module loads in about a
millisecond; its functions are the same numba code, compiled for this machine's CPU.

Each pass marked :func:`entry` stays numba's dispatcher. When the build is current, the
build's functions are added to the dispatcher as overloads for the argument types they
were built for, so numba's own dispatch picks them, by the same exact type match that
picks what it compiled itself (the build's functions check nothing of what they are
given); other types compile and load as before. The build is current when the sources of
``model`` and ``agents``, Python's, numpy's and numba's versions are those it was built
from: any edit sends every pass back to numba until the next ``make warm``.
``UNWIND_AOT=0`` leaves the build out of a process.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import pickle
import platform
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numba
import numpy as np

NAME = "unwind_aot"  # the extension module's name (its init function is named for it)
ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "model" / "__pycache__"
SOURCE_DIRS = ("model", "agents")

# Pass name -> [(argument types, the build's function)] of the current build, if any. The
# table also keeps those numba types alive: numba interns its types weakly, and a type no
# one holds is made anew, with another code, the next time the dispatch asks for it.
Table = dict[str, list[tuple[tuple[Any, ...], Any]]]

_entries: dict[str, Any] = {}  # pass name -> numba dispatcher
_table: Table | None = None  # None: not looked for yet
status = "not loaded"  # whether the build is in use, or why not (tests, diagnostics)


def entry(dispatcher: Any) -> Any:
    """Mark a compiled pass (``numba.njit``) that Python calls: the current build's
    functions join its overloads. Returns the dispatcher itself.

    Only passes called from Python alone: a compiled caller would have numba compile the
    pass for the same types again, and insert it beside the build's.
    """
    name = _name(dispatcher)
    _entries[name] = dispatcher
    for types, function in _loaded().get(name, ()):
        # What numba's Dispatcher.add_overload does with a pass it compiled or loaded:
        # the argument types' codes and a CPython function of the same calling
        # convention (METH_VARARGS | METH_KEYWORDS), so numba's dispatch calls it directly.
        dispatcher._insert([t._code for t in types], function, False)
    return dispatcher


def _name(dispatcher: Any) -> str:
    return f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__}"


def sources_digest() -> str:
    """SHA-256 of every ``.py`` file under ``model`` and ``agents`` (paths and contents)."""
    digest = hashlib.sha256()
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).glob("*.py")):
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
    }


def _library_path(folder: Path) -> Path:
    return folder / (NAME + importlib.machinery.EXTENSION_SUFFIXES[0])


def _loaded() -> Table:
    """The current build's functions by pass; empty when it is not in use."""
    global _table, status
    if _table is None:
        _table, status = load(BUILD_DIR)
    return _table


def load(folder: Path) -> tuple[Table, str]:
    """The build in ``folder`` and its status: nothing unless it is current (the same
    sources and versions) and loads."""
    if os.environ.get("UNWIND_AOT", "1") == "0":
        return {}, "off (UNWIND_AOT=0)"
    try:
        manifest = json.loads((folder / (NAME + ".json")).read_text())
    except (OSError, ValueError):
        return {}, "not built"
    if manifest.get("versions") != _versions() or manifest.get("sources") != sources_digest():
        return {}, "stale"
    try:
        spec = importlib.util.spec_from_file_location(f"model.{NAME}", _library_path(folder))
        if spec is None or spec.loader is None:
            return {}, "not built"
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        table = {
            name: [
                (pickle.loads(base64.b64decode(types)), getattr(module, export))
                for export, types in rows
            ]
            for name, rows in manifest["functions"].items()
        }
    except (ImportError, OSError, AttributeError, pickle.UnpicklingError) as exc:
        return {}, f"failed to load: {exc}"
    return table, "loaded"


def build(folder: Path = BUILD_DIR) -> int:
    """Compile every marked pass for each argument types numba compiled it for in this
    process into ``folder``; return how many functions the module exports.

    The manifest goes first and comes back last, so a build that fails leaves none.
    """
    import llvmlite.binding as llvm
    from numba.core.errors import NumbaPendingDeprecationWarning

    with warnings.catch_warnings():  # pycc is "pending deprecation", with no successor yet
        warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)
        from numba.pycc import CC  # needs setuptools

    cc = CC(NAME, source_module=__name__)
    cc.target_cpu = llvm.get_host_cpu_name()  # as numba's JIT compiles: for this machine
    functions: dict[str, list[list[str]]] = {}
    for name, dispatcher in sorted(_entries.items()):
        for k, result in enumerate(dispatcher.overloads.values()):
            export = f"{name.replace('.', '__')}__{k}"
            cc.export(export, result.signature)(dispatcher.py_func)
            types = base64.b64encode(pickle.dumps(tuple(result.signature.args))).decode()
            functions.setdefault(name, []).append([export, types])
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / (NAME + ".json")
    manifest.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cc.output_dir = tmp
        cc.compile()
        os.replace(_library_path(Path(tmp)), _library_path(folder))
    digest = sources_digest()
    manifest.write_text(
        json.dumps({"versions": _versions(), "sources": digest, "functions": functions})
    )
    return sum(len(rows) for rows in functions.values())
