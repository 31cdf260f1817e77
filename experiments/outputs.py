"""Writing results: atomically, so a reader never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

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


def wide_parquet_writer(frame: pd.DataFrame) -> Callable[[str], None]:
    """:func:`parquet_writer` for a frame of one leading column and many float64 ones (a
    stock each): the same file, byte for byte, without pandas converting each column on
    its own (0.15 s for the 1,000 columns of a default run's daily closes).

    The leading column and the first float one go through pyarrow's pandas conversion,
    as ``to_parquet`` takes them; the other float columns are their arrays, and their
    pandas metadata the first one's, renamed.

    Raises:
        ValueError: a column after the first is not float64.
    """
    if not (frame.dtypes.iloc[1:] == np.float64).all():
        raise ValueError("wide_parquet_writer: the columns after the first must be float64")

    def write(tmp: str) -> None:
        head = pa.Table.from_pandas(frame.iloc[:, :2], preserve_index=False)
        meta = json.loads(head.schema.metadata[b"pandas"])
        names = [str(name) for name in frame.columns[1:]]
        leading, first = meta["columns"]
        meta["columns"] = [leading, *({**first, "name": n, "field_name": n} for n in names)]
        fields = [head.schema.field(0), *(pa.field(name, pa.float64()) for name in names)]
        schema = pa.schema(
            fields, metadata={**head.schema.metadata, b"pandas": json.dumps(meta).encode()}
        )
        values = np.ascontiguousarray(frame.iloc[:, 1:].to_numpy(np.float64).T)  # (C, rows)
        arrays = [pa.array(v, from_pandas=True) for v in values]  # NaN is null, as in pandas
        pq.write_table(pa.Table.from_arrays([head.column(0), *arrays], schema=schema), tmp)

    return write


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
