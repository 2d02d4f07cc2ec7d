"""Atomic writers for every output file, and input hashing.

A crash never leaves a half-written file under a final name: each writer writes to a temporary
file in the destination folder and renames it into place with ``os.replace``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the output the usual permissions (umask applies)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_csv(path: str | Path, frame, float_format: str | None = None) -> Path:
    """Write a DataFrame as CSV atomically (no index)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")
    return Path(path)


def _default(o: Any):
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    msg = f"cannot write {type(o).__name__} to JSON"
    raise TypeError(msg)


def write_json(path: str | Path, data: dict) -> Path:
    """Write ``data`` as indented JSON atomically."""
    return write_text(path, json.dumps(data, indent=2, default=_default) + "\n")


def write_yaml(path: str | Path, data: Any, header: str = "") -> Path:
    """Write ``data`` as block-style YAML atomically, with an optional comment header."""
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    return write_text(path, header + text)


def write_netcdf(path: str | Path, ds) -> Path:
    """Write an xarray Dataset to NetCDF-4 (h5netcdf) atomically."""
    # block models are mostly empty (NaN outside the domains): gzip shrinks them ~20 times
    encoding = {
        name: {"zlib": True, "complevel": 4}
        for name, var in ds.data_vars.items()
        if var.dtype.kind in "fiu" and var.ndim > 1
    }
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
    return Path(path)


def save_figure(path: str | Path, fig, dpi: int = 110) -> Path:
    """Save a matplotlib Figure atomically and close it."""
    import matplotlib.pyplot as plt

    fmt = Path(path).suffix.lstrip(".") or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def file_sha256(path: str | Path) -> str:
    """Content hash of a file (hex SHA-256)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
