"""``make warm``: compile the model's passes once, so that no run pays for it.

A default ``unwind run jan2024`` with every pass numba's compiles each, and caches it, for
the types the run hands it (a smaller universe would leave out a search for many keys);
then :func:`model.aot.build` builds those passes ahead of time. Without a C compiler or
setuptools the build is skipped and the passes stay numba's.
"""

from __future__ import annotations

import os
import sys
import tempfile


def main() -> int:
    os.environ["UNWIND_AOT"] = "0"  # before the model's modules are imported
    from experiments.cli import main as unwind
    from model import aot

    with tempfile.TemporaryDirectory() as tmp:
        code = unwind(["run", "jan2024", "--seed", "1", "--quiet", "--out", f"{tmp}/run"])
    if code:
        return code
    try:
        exports = aot.build()
    except Exception as exc:  # no setuptools or C compiler: the passes stay numba's
        print(f"aot: not built ({exc!r}); numba loads the passes", file=sys.stderr)
        return 0
    print(f"aot: {exports} functions of {len(aot._entries)} passes built into {aot.BUILD_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
