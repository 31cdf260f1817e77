"""Writing results: atomically, so a reader never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from model.config import ConfigError


def ensure_dir(path: Path, key: str = "--out") -> Path:
    """Create ``path`` (and parents) or raise a ConfigError saying why it cannot be used."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{key} = {str(path)!r}: cannot create directory ({exc.strerror})"
        ) from None
    if not path.is_dir():
        raise ConfigError(f"{key} = {str(path)!r}: not a directory")
    try:  # a real write: os.access says yes to root on a read-only mount
        fd, probe = tempfile.mkstemp(dir=path, prefix=".probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(
            f"{key} = {str(path)!r}: directory is not writable ({exc.strerror})"
        ) from None
    return path


def one_line(text: object, limit: int) -> str:
    """Squash a message (often an exception's) to one line of at most ``limit`` characters.

    CLI errors and summary-table cells must stay one line, however long the cause.
    """
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def output_error(key: str, path: Path, exc: OSError) -> ConfigError:
    """A one-line error for a write that failed (full disk, read-only directory)."""
    return ConfigError(f"{key} = {str(path)!r}: cannot write ({exc.strerror or exc})")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write ``path`` through a temp file in its directory, then rename it into place.

    The temp name starts with a dot and ends in ``.tmp``: Parquet dataset readers
    skip it, ``os.replace`` makes the final name appear complete or not at all, and
    a restarted sweep deletes leftovers. Permissions follow the umask (mkstemp's
    0600 would hide results from colleagues and from workers running as another user).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_together(out: Path, writers: dict[str, Callable[[str], None]]) -> None:
    """Write several files into ``out`` so that all of them appear, or none.

    Each file goes to a temp name first; only when every one is complete are they
    renamed into place, so a full disk halfway through leaves no mix of new and old
    results. On failure the temp files are removed and the OSError is raised.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for name, write in writers.items():
            fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")
            os.close(fd)
            staged.append((tmp, out / name))
            os.chmod(tmp, 0o666 & ~_umask())
            write(tmp)
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise


def parquet_writer(frame: pd.DataFrame) -> Callable[[str], None]:
    return lambda tmp: frame.to_parquet(tmp, index=False)


def json_writer(data: Any) -> Callable[[str], None]:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2) + "\n")

    return write


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_text(text: str, path: Path) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    atomic_write(path, write)


def write_json(data: Any, path: Path) -> None:
    write_text(json.dumps(data, indent=2) + "\n", path)
