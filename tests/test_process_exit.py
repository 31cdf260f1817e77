"""experiments.process_exit: a finished run's process ends as a normal exit would, less the
interpreter's teardown."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )


def test_exit_now_runs_the_atexit_handlers_flushes_and_keeps_the_status(tmp_path):
    marker = tmp_path / "handler.txt"
    proc = _run(
        f"""
        import atexit, sys
        from experiments.process_exit import exit_now
        atexit.register(lambda: open({str(marker)!r}, "w").write("ran"))
        print("buffered", end="")
        print("to stderr", end="", file=sys.stderr)
        class Teardown:
            def __del__(self):
                print(" torn down", end="")
        kept = Teardown()
        exit_now(3)
        print(" not reached", end="")
        """
    )
    assert proc.returncode == 3
    assert proc.stdout == "buffered"  # flushed, and no teardown of the module's objects
    assert proc.stderr == "to stderr"
    assert marker.read_text() == "ran"


def test_exit_now_returns_while_another_thread_runs():
    proc = _run(
        """
        import threading
        from experiments.process_exit import exit_now
        done = threading.Event()
        worker = threading.Thread(target=done.wait)
        worker.start()
        exit_now(3)
        print("returned", end="")
        done.set()
        """
    )
    assert proc.returncode == 0
    assert proc.stdout == "returned"
