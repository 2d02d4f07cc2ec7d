"""Stage artefacts on disk: exact round trips of tables, models and stage records.

A reused stage hands its artefacts to the next stages from these files, so they must come back
exactly as they were made: floats are written with the shortest repr that parses back to the same
bits, and every column's dtype is kept in a small JSON sidecar (``<table>.csv.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from estimator.errors import DataError
from estimator.io.output import atomic_path, file_sha256, write_json, write_text

__all__ = [
    "load_models",
    "load_table",
    "models_text",
    "read_stage_record",
    "save_table",
    "tree_sha256",
]


def _read_csv_exact(path: Path, dtypes: dict[str, str]) -> pd.DataFrame:
    text_cols = {c: str for c, t in dtypes.items() if not t.startswith(("float", "int", "uint", "bool"))}
    kwargs: dict[str, Any] = {"dtype": text_cols, "keep_default_na": False, "na_values": {}}
    for c, t in dtypes.items():
        if t.startswith("float"):
            kwargs["na_values"][c] = [""]
    if int(pd.__version__.split(".")[0]) < 3:  # pandas 3 parses floats exactly by default
        kwargs["float_precision"] = "round_trip"
    df = pd.read_csv(path, **kwargs)
    for c, t in dtypes.items():
        if c in df and str(df[c].dtype) != t and not t.startswith(("object", "str", "string")):
            df[c] = df[c].astype(t)
    return df


def save_table(path: str | Path, frame: pd.DataFrame, sidecar: str | Path | None = None) -> list[Path]:
    """Write ``frame`` as CSV plus its dtypes (JSON ``sidecar``, default ``path.json``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")
    side = Path(sidecar) if sidecar is not None else path.with_name(path.name + ".json")
    write_json(side, {"columns": {str(c): str(t) for c, t in frame.dtypes.items()}})
    return [path, side]


def load_table(path: str | Path, sidecar: str | Path | None = None) -> pd.DataFrame:
    """Read a table written by :func:`save_table`, every value as it was."""
    path = Path(path)
    side = Path(sidecar) if sidecar is not None else path.with_name(path.name + ".json")
    try:
        dtypes = json.loads(side.read_text(encoding="utf-8"))["columns"]
    except (OSError, ValueError, KeyError) as err:
        msg = f"{side}: cannot read the table's column types ({err})"
        raise DataError(msg) from None
    df = _read_csv_exact(path, dtypes)
    return df[list(dtypes)]


def models_text(models: dict, header: str = "") -> str:
    """``variograms.yaml``: ``{domain: {grade: {"model": {...}}}}`` in the config's own format."""
    doc = {dom: {g: {"model": m.to_dict()} for g, m in per.items()} for dom, per in models.items()}
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)


def load_models(path: str | Path) -> dict:
    """The models of a ``variograms.yaml`` (as :func:`models_text` wrote them)."""
    from estimator.variography.models import VariogramModel

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        msg = f"{path}: cannot read the variogram models ({err})"
        raise DataError(msg) from None
    return {
        dom: {g: VariogramModel.from_dict(entry["model"]) for g, entry in per.items()}
        for dom, per in doc.items()
    }


def write_stage_record(path: str | Path, record: dict) -> Path:
    """A stage's report rows, counts and notes (JSON)."""
    return write_json(path, record)


def read_stage_record(path: str | Path) -> dict:
    """The record :func:`write_stage_record` wrote."""
    from estimator.io.output import read_json

    return read_json(path, "stage record")


def tree_sha256(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, sorted)."""
    import hashlib

    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(p.relative_to(path).as_posix().encode() + b"\0" + file_sha256(p).encode())
    return h.hexdigest()


def write_models(path: str | Path, models: dict, header: str = "") -> Path:
    """Write ``variograms.yaml`` atomically."""
    return write_text(path, models_text(models, header))


def finite_or_none(x) -> Any:
    """JSON-safe number (NaN and inf become None)."""
    return float(x) if x is not None and np.isfinite(x) else None


def combine_hashes(digests: dict[str, str]) -> str:
    """One hash for an artefact made of several files: ``{relative path: sha256}``."""
    import hashlib

    h = hashlib.sha256()
    for rel, digest in sorted(digests.items()):
        h.update(f"{rel}\0{digest}\n".encode())
    return h.hexdigest()


def open_blockmodel(path: str | Path):
    """The block model of a run folder as an xarray Dataset (NetCDF read whole)."""
    import xarray as xr

    path = Path(path)
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    except Exception as err:
        msg = f"{path}: cannot be read as a block model ({type(err).__name__}: {err})"
        raise DataError(msg) from None


def load_grade_tonnage(path: str | Path) -> pd.DataFrame:
    """``grade_tonnage.csv`` as a table, with ``attrs["metal_unit"]`` restored."""
    table = pd.read_csv(path, dtype={"domain": str, "class": str}, keep_default_na=False,
                        na_values={"grade": [""]})  # fmt: skip
    if "metal_unit" in table and len(table):
        table.attrs["metal_unit"] = str(table["metal_unit"].iloc[0])
    return table
