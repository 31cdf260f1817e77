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
    if not os.access(path, os.W_OK):
        raise ConfigError(f"{key} = {str(path)!r}: directory is not writable")
    return path


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


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_text(text: str, path: Path) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    atomic_write(path, write)


def write_json(data: Any, path: Path) -> None:
    write_text(json.dumps(data, indent=2) + "\n", path)
