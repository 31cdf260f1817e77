"""The ahead-of-time build of the compiled passes (model/aot.py).

The build's functions are numba's code for the types they were built for, and check
nothing of what they are given: these tests hold that only numba's exact dispatch reaches
them, and that a build not made from the present sources is left out. Every other test of
a compiled pass runs the build's function where ``make warm`` built it (``aot.status`` is
``"loaded"``), and numba's otherwise.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
from numba.core.registry import CPUDispatcher

from model import aot
from model.ledger import _ascend_by_one, consecutive


def test_marked_passes_stay_numba_dispatchers():
    """``entry`` hands back the dispatcher: callers, tests and compiled callers see numba's."""
    assert isinstance(_ascend_by_one, CPUDispatcher)
    assert aot._entries["model.ledger._ascend_by_one"] is _ascend_by_one


def test_build_left_out_unless_current(tmp_path, monkeypatch):
    """No manifest, other sources or versions, or UNWIND_AOT=0: nothing is loaded."""
    assert aot.load(tmp_path) == ({}, "not built")
    manifest = {"versions": aot._versions(), "sources": "0" * 64, "functions": {}}
    (tmp_path / f"{aot.NAME}.json").write_text(json.dumps(manifest))
    assert aot.load(tmp_path) == ({}, "stale")
    manifest.update(sources=aot.sources_digest(), versions={**aot._versions(), "numba": "0"})
    (tmp_path / f"{aot.NAME}.json").write_text(json.dumps(manifest))
    assert aot.load(tmp_path) == ({}, "stale")
    monkeypatch.setenv("UNWIND_AOT", "0")
    assert aot.load(tmp_path)[1] == "off (UNWIND_AOT=0)"


def test_sources_digest_follows_the_sources(tmp_path, monkeypatch):
    """An edit of any model or agents module changes the digest (so the build is stale)."""
    for folder in aot.SOURCE_DIRS:
        shutil.copytree(aot.ROOT / folder, tmp_path / folder)
    monkeypatch.setattr(aot, "ROOT", tmp_path)
    before = aot.sources_digest()
    path = tmp_path / "agents" / "retail.py"
    path.write_text(path.read_text() + "\n")
    assert aot.sources_digest() != before


def test_built_function_serves_only_its_types():
    """An int64 C-contiguous array is the type the build has: numba's dispatch calls it
    and, with a current build (what ``make test``'s setup makes), compiles nothing. A
    strided view or int32 ids, which the build's function would misread, go to a pass
    numba compiles (or loads) for them, and answer right, built or not."""
    assert aot.status in ("loaded", "stale", "not built", "off (UNWIND_AOT=0)"), aot.status
    compiled = len(_ascend_by_one.overloads)
    ids = np.arange(7, 20, dtype=np.int64)
    assert _ascend_by_one(ids) and not _ascend_by_one(ids[::-1].copy())
    if aot.status == "loaded":
        assert len(_ascend_by_one.overloads) == compiled
    assert not _ascend_by_one(np.arange(40, dtype=np.int64)[::2])  # steps of 2, strided
    assert _ascend_by_one(np.arange(5, dtype=np.int32))
    assert consecutive(np.arange(3, 9))
