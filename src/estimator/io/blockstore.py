"""The chunked block-model store: a Zarr v3 folder written chunk by chunk as blocks are estimated.

Layout of ``blockmodel.zarr`` (SPEC section 5, readable with ``xarray.open_zarr``)::

    blockmodel.zarr/
      zarr.json               group metadata, consolidated; global attributes origin,
                              block_size, shape, rotation, units (+ the run's own, added later)
                              and ``estimator_store`` (format, plan_id, layout)
      x, y, z, domain         coordinates (block centres in the grid frame, domain names)
      x_world, y_world        (y, x) world centres, only when the grid is rotated
      fraction, <g>, <g>_kv, <g>_slope, <g>_ke, <g>_n, <g>_holes, <g>_dist, <g>_pass,
      <g>_flag, <g>_latest_tranche, <g>_newest_n, <g>_newest_weight, class
                              (domain, z, y, x), Zarr chunks (1, cz, cy, cx)
      .chunks/z<k>_y<j>_x<i>.json   completion record of each estimated chunk

* **Chunks.** Zarr chunks are ``(1 domain, cz, cy, cx)`` with ``compute.chunks = (cx, cy,
  cz)``: they line up with the estimation tasks, so two tasks never write the same Zarr chunk
  and workers write their own chunks concurrently, without locks.
* **Fill values.** A block of a chunk that was never written reads as *outside every domain*:
  ``fraction`` 0, estimates and ``_kv, _slope, _ke, _dist`` NaN, ``_n, _holes, _flag`` 0,
  ``_pass`` -1, ``class`` 0, ``_latest_tranche`` and ``_newest_n`` 0, ``_newest_weight``
  NaN. These are exactly the values an estimated chunk holds outside its
  domains, so only chunks that touch a domain take disk space (Zarr does not store a chunk
  equal to its fill value), and a store read whole equals the in-memory block model.
* **class** is stored as integer codes: 0 unclassified, k the k-th class of the config, with
  CF ``flag_values``/``flag_meanings`` and the exact names in ``class_names``.
  :func:`decode_classes` turns them into the labels of the in-memory model (``""`` =
  unclassified); :func:`estimator.reporting.grade_tonnage` reads either form.
* **Provenance** per grade (:data:`~estimator.blockmodel.grid.PROVENANCE_VARIABLES`):
  ``<g>_latest_tranche`` as uint8 codes (0 = no sample, k = the k-th tranche of
  ``data.assays``; CF ``flag_values``/``flag_meanings`` and the exact names in
  ``tranche_names``), ``<g>_newest_n`` and ``<g>_newest_weight`` for the newest tranche.
* **Plan digest.** The global attribute ``estimate_plan_sha256`` names every input of the
  numbers (:func:`estimator.kriging.updates.plan_digest`); it survives the NetCDF conversion,
  so an update can check that a previous model was made from the plan it is told about.
* **Completion records.** After a chunk's arrays are written, a small JSON file records the
  plan id, the chunk's window, the SHA-256 of its data (:func:`chunk_sha256`) and the task's
  summary counts. The record is written last and atomically, so it is the truth for resume:
  a chunk counts as done only when its record exists, names the store's plan id, and the
  data read back still hash to it (:meth:`BlockStore.verified_record`). A store created for
  another plan id is replaced by a fresh one (:func:`open_store`).

Only this module touches the store on disk; the estimation engine
(:mod:`estimator.kriging.chunked`) hands it NumPy arrays.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from estimator.blockmodel.grid import (
    DIMS,
    GRADE_VARIABLES,
    MAX_TRANCHES,
    PROVENANCE_VARIABLES,
    BlockGrid,
    flag_token,
    variable_attrs,
)
from estimator.errors import DataError

__all__ = [
    "FORMAT",
    "PLAN_ATTR",
    "RECORDS",
    "STORE_NAME",
    "BlockStore",
    "StoreLayout",
    "chunk_sha256",
    "create_store",
    "decode_classes",
    "iter_chunks",
    "layout_of",
    "model_arrays",
    "open_block_model",
    "open_store",
    "store_attributes",
    "store_digest",
    "to_netcdf",
    "verify_store",
]

#: File name of the store in a run folder.
STORE_NAME = "blockmodel.zarr"
#: Folder of the completion records, inside the store.
RECORDS = ".chunks"
#: Format tag written in the store's attributes.
FORMAT = "estimator-blockstore-1"
#: Root attribute holding the format, plan id and layout.
STORE_ATTR = "estimator_store"
#: Global attribute holding the digest of the plan that made the numbers.
PLAN_ATTR = "estimate_plan_sha256"
#: ``long_name`` of the stored class codes.
CLASS_CODE_NAME = "resource class code (0 = unclassified; see flag_meanings and class_names)"


@dataclass(frozen=True)
class StoreLayout:
    """Everything that fixes the shape of a store: grid, names, chunks, classes, units.

    Parameters
    ----------
    grid : BlockGrid
    domains, grades : tuple of str
        Domain names in config order; grade names.
    chunks : tuple of 3 int
        ``compute.chunks`` ``(cx, cy, cz)``.
    classes : tuple of str, optional
        Class names in rule order (codes 1, 2, ...); ``None`` = no ``class`` variable.
    length_unit, grade_unit : str, optional
        ``data.length_unit`` and ``data.grade_unit``, for the variables' ``units``.
    method : str
        Estimation method, for the estimates' ``long_name``.
    tranches : tuple of str
        Tranche names in ``data.assays`` order (codes 1, 2, ... of ``<g>_latest_tranche``).
    """

    grid: BlockGrid
    domains: tuple[str, ...]
    grades: tuple[str, ...]
    chunks: tuple[int, int, int]
    classes: tuple[str, ...] | None = None
    length_unit: str | None = None
    grade_unit: str | None = None
    method: str = "ok"
    tranches: tuple[str, ...] = ()

    def __post_init__(self):
        chunks = tuple(int(c) for c in self.chunks)
        if len(chunks) != 3 or min(chunks) < 1:
            msg = f"compute.chunks must be three positive integers (x, y, z), got {self.chunks!r}"
            raise ValueError(msg)
        object.__setattr__(self, "chunks", chunks)
        object.__setattr__(self, "domains", tuple(str(d) for d in self.domains))
        object.__setattr__(self, "grades", tuple(str(g) for g in self.grades))
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "tranches", tuple(str(t) for t in self.tranches))
        if len(self.tranches) > MAX_TRANCHES:
            msg = (
                f"data.assays: {len(self.tranches)} tranches; the block model records at most "
                f"{MAX_TRANCHES} (merge older tranches into one file)"
            )
            raise ValueError(msg)

    # -- variables -----------------------------------------------------------------------
    @property
    def class_dtype(self) -> np.dtype:
        """Integer type of the class codes (uint8 up to 255 classes)."""
        return np.dtype(np.uint8 if len(self.classes or ()) < 256 else np.uint16)

    def variables(self) -> list[tuple[str, np.dtype, float | int]]:
        """``(name, dtype, fill value)`` of every chunked variable, in hashing order."""
        out = [("fraction", np.dtype(np.float64), 0.0)]
        for g in self.grades:
            for suffix, (dtype, fill) in GRADE_VARIABLES.items():
                out.append((f"{g}{suffix}", np.dtype(dtype), -1 if suffix == "_pass" else fill))
            for suffix, (dtype, fill) in PROVENANCE_VARIABLES.items():
                out.append((f"{g}{suffix}", np.dtype(dtype), fill))
        if self.classes is not None:
            out.append(("class", self.class_dtype, 0))
        return out

    def empty_chunk(self, index: tuple[int, int, int]) -> dict[str, np.ndarray]:
        """The arrays of a chunk outside every domain (the fill values)."""
        shape = self.chunk_shape(index)
        return {name: np.full(shape, fill, dtype=dt) for name, dt, fill in self.variables()}

    # -- chunks --------------------------------------------------------------------------
    @property
    def n_chunks(self) -> tuple[int, int, int]:
        """Chunks along ``(z, y, x)``."""
        nx, ny, nz = self.grid.shape
        cx, cy, cz = self.chunks
        return (-(-nz // cz), -(-ny // cy), -(-nx // cx))

    def indices(self) -> list[tuple[int, int, int]]:
        """Every chunk index ``(kz, jy, ix)``, z slowest and x fastest (the fixed order)."""
        kz, jy, ix = self.n_chunks
        return [(k, j, i) for k in range(kz) for j in range(jy) for i in range(ix)]

    def window(self, index: Sequence[int]) -> tuple[slice, slice, slice]:
        """Block index ranges ``(z, y, x)`` of chunk ``index``."""
        k, j, i = (int(v) for v in index)
        nx, ny, nz = self.grid.shape
        cx, cy, cz = self.chunks
        if not (0 <= k * cz < nz and 0 <= j * cy < ny and 0 <= i * cx < nx):
            msg = f"chunk {tuple(index)!r} is outside the grid ({self.n_chunks} chunks)"
            raise IndexError(msg)
        return (
            slice(k * cz, min((k + 1) * cz, nz)),
            slice(j * cy, min((j + 1) * cy, ny)),
            slice(i * cx, min((i + 1) * cx, nx)),
        )

    def chunk_shape(self, index: Sequence[int]) -> tuple[int, int, int, int]:
        """``(n_domains, wz, wy, wx)`` of chunk ``index``."""
        zs, ys, xs = self.window(index)
        return (len(self.domains), zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start)

    # -- serialisation -------------------------------------------------------------------
    def to_json(self) -> dict:
        """A JSON-able description (round-trips through :meth:`from_json`)."""
        out = asdict(self)
        out["grid"] = {
            "origin": list(self.grid.origin),
            "block_size": list(self.grid.block_size),
            "shape": list(self.grid.shape),
            "rotation": self.grid.rotation,
        }
        return json.loads(json.dumps(out))

    @classmethod
    def from_json(cls, data: Mapping) -> StoreLayout:
        """Inverse of :meth:`to_json`."""
        d = dict(data)
        g = d.pop("grid")
        grid = BlockGrid(g["origin"], g["block_size"], g["shape"], g["rotation"])
        for key in ("domains", "grades", "chunks", "classes", "tranches"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(grid=grid, **d)


# ---------------------------------------------------------------------------------------
# hashing
# ---------------------------------------------------------------------------------------
def chunk_sha256(arrays: Mapping[str, np.ndarray], names: Sequence[str]) -> str:
    """SHA-256 of a chunk's arrays, in the order of ``names``.

    Each array contributes its name, dtype, shape and C-order bytes. Floats are hashed with
    one NaN bit pattern and +0 for -0 (NaN payloads and the sign of zero are not data, and
    Zarr may drop a chunk that compares equal to its fill value), so the hash of the arrays
    computed and of the same arrays read back from the store agree.
    """
    h = hashlib.sha256()
    for name in names:
        a = np.ascontiguousarray(arrays[name])
        if a.dtype.kind == "f":
            a = np.where(np.isnan(a), np.nan, a + 0.0)
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------
# the store
# ---------------------------------------------------------------------------------------
def _record_name(index: Sequence[int]) -> str:
    k, j, i = (int(v) for v in index)
    return f"z{k}_y{j}_x{i}.json"


def _write_atomic(path: Path, text: str) -> None:
    """Write a small text file under a temporary name, flush it to disk, then rename it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _consolidate(path: Path) -> None:
    import zarr

    with warnings.catch_warnings():
        # "Consolidated metadata is currently not part in the Zarr format 3 specification":
        # it is what lets xarray open the store without listing the record folder
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))


def _atomic_zarr_writes() -> bool:
    """Whether this zarr writes a chunk file by renaming a new file into place (zarr >= 3.1.3),
    so that a chunk file shared by a hard link is never changed in place."""
    try:
        from zarr.storage import _local
    except ImportError:  # pragma: no cover - zarr's layout changed: copy
        return False
    return hasattr(_local, "_atomic_write")


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` a hard link to ``src`` where zarr never rewrites a file in place and the file
    system allows it (no bytes copied), a byte copy otherwise."""
    with contextlib.suppress(FileNotFoundError):
        dst.unlink()
    if _ATOMIC_WRITES:
        try:
            os.link(src, dst)
            return
        except OSError:  # another file system, or no hard links: copy
            pass
    shutil.copyfile(src, dst)


_ATOMIC_WRITES = _atomic_zarr_writes()


class BlockStore:
    """An open chunked store: write and read chunks, keep completion records.

    Made by :func:`create_store` / :func:`open_store` (client side) or
    :meth:`BlockStore.attach` (a worker writing its chunks into an existing store).
    """

    def __init__(self, path: str | Path, layout: StoreLayout, plan_id: str):
        self.path = Path(path)
        self.layout = layout
        self.plan_id = str(plan_id)
        self.records = self.path / RECORDS
        self._arrays: dict[str, object] = {}
        self._lock = threading.Lock()
        self._same_format: dict[str, bool] = {}

    @classmethod
    def attach(cls, path: str | Path, layout: StoreLayout, plan_id: str) -> BlockStore:
        """Open an existing store to write chunks (no checks beyond its presence)."""
        path = Path(path)
        if not (path / "zarr.json").is_file():
            msg = f"{path}: no block-model store here (zarr.json missing)"
            raise DataError(msg)
        return cls(path, layout, plan_id)

    def _array(self, name: str):
        arr = self._arrays.get(name)
        if arr is None:
            import zarr

            with self._lock:
                arr = self._arrays.get(name)
                if arr is None:
                    arr = zarr.open_array(str(self.path / name), mode="r+")
                    self._arrays[name] = arr
        return arr

    # -- chunks --------------------------------------------------------------------------
    def write_chunk(
        self,
        index: Sequence[int],
        arrays: Mapping[str, np.ndarray],
        names: Sequence[str] | None = None,
    ) -> str:
        """Write every chunked variable of chunk ``index``; return the chunk's SHA-256.

        ``arrays`` maps each name of :meth:`StoreLayout.variables` to an array of the chunk's
        shape ``(n_domains, wz, wy, wx)`` and dtype. With ``names`` only those variables are
        written (the others must already hold ``arrays``' values, as after
        :meth:`copy_chunk`); the hash still covers every variable.
        """
        zs, ys, xs = self.layout.window(index)
        shape = self.layout.chunk_shape(index)
        only = None if names is None else set(names)
        names = []
        for name, dtype, _ in self.layout.variables():
            names.append(name)
            if only is not None and name not in only:
                continue
            a = np.asarray(arrays[name])
            if a.shape != shape or a.dtype != dtype:
                msg = (
                    f"chunk {tuple(index)} variable {name}: expected shape {shape} and dtype "
                    f"{dtype}, got {a.shape} and {a.dtype}"
                )
                raise ValueError(msg)
            self._array(name)[:, zs, ys, xs] = a
        return chunk_sha256(arrays, names)

    def copy_chunk(self, source: BlockStore, index: Sequence[int]) -> bool:
        """Copy the files of chunk ``index`` of every variable from ``source``, byte for byte.

        Only between stores of the same grid, names and chunking whose arrays have the same
        format (data type, chunk grid, key encoding, fill value, codecs): False, and nothing
        copied, otherwise. A file ``source`` does not have (a chunk of fill values) is removed
        here. Nothing is verified: read the chunk back and compare its hash with the source's
        record before recording it.
        """
        mine, theirs = self.layout, source.layout
        if (mine.grid, mine.domains, mine.grades, mine.chunks, mine.classes) != (
            theirs.grid, theirs.domains, theirs.grades, theirs.chunks, theirs.classes
        ):  # fmt: skip
            return False
        names = [v[0] for v in mine.variables()]
        key = str(source.path)
        if key not in self._same_format:
            self._same_format[key] = all(
                _array_format(self.path / n) == _array_format(source.path / n) is not None
                for n in names
            )
        if not self._same_format[key]:
            return False
        k, j, i = (str(int(v)) for v in index)
        for name in names:
            for d in range(len(mine.domains)):
                rel = Path(name, "c", str(d), k, j, i)
                src, dst = source.path / rel, self.path / rel
                if src.is_file():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    _link_or_copy(src, dst)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        dst.unlink()
        return True

    def read_chunk(self, index: Sequence[int], names: Sequence[str] | None = None) -> dict:
        """The arrays of chunk ``index`` as stored (fill values where never written)."""
        return self.read_window(self.layout.window(index), names)

    def read_window(self, window: Sequence[slice], names: Sequence[str] | None = None) -> dict:
        """The arrays of the blocks ``[z, y, x]`` of ``window`` (any window, not only a chunk)."""
        zs, ys, xs = window
        names = [v[0] for v in self.layout.variables()] if names is None else list(names)
        return {name: np.asarray(self._array(name)[:, zs, ys, xs]) for name in names}

    def chunk_hash(self, index: Sequence[int]) -> str:
        """SHA-256 of chunk ``index`` as stored now."""
        names = [v[0] for v in self.layout.variables()]
        return chunk_sha256(self.read_chunk(index, names), names)

    # -- completion records --------------------------------------------------------------
    def record_chunk(self, index: Sequence[int], sha256: str, summary: Mapping) -> None:
        """Record chunk ``index`` as complete (call after :meth:`write_chunk` returned)."""
        zs, ys, xs = self.layout.window(index)
        record = {
            "plan_id": self.plan_id,
            "chunk": [int(v) for v in index],
            "window": [[s.start, s.stop] for s in (zs, ys, xs)],
            "sha256": sha256,
            "summary": summary,
        }
        self.records.mkdir(exist_ok=True)
        _write_atomic(self.records / _record_name(index), json.dumps(record) + "\n")

    def record(self, index: Sequence[int]) -> dict | None:
        """The completion record of chunk ``index`` as written (not checked), or None."""
        try:
            text = (self.records / _record_name(index)).read_text(encoding="utf-8")
            record = json.loads(text)
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def verified_record(self, index: Sequence[int]) -> dict | None:
        """The record of chunk ``index`` when it can be trusted, else None.

        Trusted: it names this store's plan id and chunk, and the stored data still hash to
        its SHA-256 (a chunk file changed, truncated or removed since fails this).
        """
        record = self.record(index)
        if record is None or record.get("plan_id") != self.plan_id:
            return None
        if record.get("chunk") != [int(v) for v in index]:
            return None
        try:
            ok = self.chunk_hash(index) == record.get("sha256")
        except Exception:  # a damaged chunk file fails to decode: not trusted
            ok = False
        return record if ok else None

    def clear_record(self, index: Sequence[int]) -> None:
        """Remove the record of chunk ``index`` (its data will be recomputed)."""
        with contextlib.suppress(FileNotFoundError):
            (self.records / _record_name(index)).unlink()

    def recorded(self) -> list[tuple[int, int, int]]:
        """Indices of the chunks with a record file, in the fixed chunk order."""
        if not self.records.is_dir():
            return []
        have = {p.name for p in self.records.glob("z*_y*_x*.json")}
        return [idx for idx in self.layout.indices() if _record_name(idx) in have]

    def verify(self, indices: Sequence[Sequence[int]] | None = None) -> list[tuple[int, int, int]]:
        """Chunks whose record is missing, foreign or no longer matches the stored data.

        ``indices`` default to every chunk with a record file.
        """
        todo = self.recorded() if indices is None else [tuple(i) for i in indices]
        return [tuple(i) for i in todo if self.verified_record(i) is None]

    # -- attributes ----------------------------------------------------------------------
    def set_attrs(self, attrs: Mapping) -> None:
        """Add global attributes (run name, version, config hash, ...) and re-consolidate."""
        import zarr

        group = zarr.open_group(str(self.path), mode="r+")
        group.attrs.update({str(k): _jsonable(v) for k, v in attrs.items()})
        _consolidate(self.path)


def _array_format(path: Path) -> dict | None:
    """An array's metadata less its attributes: what fixes the bytes of its chunk files."""
    try:
        meta = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    keys = meta.get("chunk_key_encoding") if isinstance(meta, dict) else None
    if not isinstance(keys, dict) or keys != {
        "name": "default", "configuration": {"separator": "/"}
    }:  # fmt: skip
        return None  # chunk files not at <name>/c/<d>/<k>/<j>/<i>
    meta.pop("attributes", None)
    return meta


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def store_attributes(path: str | Path) -> dict:
    """The global attributes of the store at ``path`` (``{}`` when there is none)."""
    try:
        meta = json.loads((Path(path) / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    attrs = meta.get("attributes") if isinstance(meta, dict) else None
    return dict(attrs) if isinstance(attrs, dict) else {}


def _store_info(path: Path) -> dict | None:
    """The ``estimator_store`` attribute of an existing store, or None."""
    try:
        meta = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    info = (meta.get("attributes") or {}).get(STORE_ATTR)
    return info if isinstance(info, dict) else None


def create_store(
    path: str | Path, layout: StoreLayout, plan_id: str, attrs: Mapping | None = None
) -> BlockStore:
    """Create an empty store at ``path`` (replacing an estimator store already there).

    Parameters
    ----------
    path : path
        The store folder, normally ``<run folder>/blockmodel.zarr``.
    layout : StoreLayout
    plan_id : str
        The caller's hash of every input of the estimate; chunks are reused on a later run
        only under the same id.
    attrs : mapping, optional
        Extra global attributes.

    Raises
    ------
    DataError
        When ``path`` exists and is not an estimator block-model store (it is never deleted).
    """
    import zarr

    path = Path(path)
    if path.exists():
        if not path.is_dir() or _store_info(path) is None:
            msg = (
                f"{path} exists and is not an estimator block-model store: move it away or "
                "choose another output folder (it is not overwritten)"
            )
            raise DataError(msg)
        shutil.rmtree(path)
    grid = layout.grid
    nx, ny, nz = grid.shape
    nd = len(layout.domains)
    cx, cy, cz = layout.chunks
    described = variable_attrs(
        layout.grades,
        length_unit=layout.length_unit,
        grade_unit=layout.grade_unit,
        method=layout.method,
        tranches=layout.tranches,
    )
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.attrs.update(
        {
            "origin": list(grid.origin),
            "block_size": list(grid.block_size),
            "shape": list(grid.shape),
            "rotation": grid.rotation,
            "units": described[""]["units"],
            STORE_ATTR: {"format": FORMAT, "plan_id": str(plan_id), "layout": layout.to_json()},
            **{str(k): _jsonable(v) for k, v in (attrs or {}).items()},
        }
    )
    xc, yc, zc = grid.centres_local()
    coords = {"x": xc, "y": yc, "z": zc}
    for name, values in coords.items():
        arr = group.create_array(
            name, shape=values.shape, dtype="f8", dimension_names=(name,),
            attributes=described[name],
        )  # fmt: skip
        arr[:] = values
    dom = group.create_array(
        "domain", shape=(nd,), dtype=str, dimension_names=("domain",),
        attributes=described["domain"],
    )  # fmt: skip
    dom[:] = np.array(layout.domains, dtype=object)
    data_attrs = {}
    if grid.is_rotated:
        xw, yw = grid.centres_world_2d()
        for name, values in (("x_world", xw), ("y_world", yw)):
            arr = group.create_array(
                name, shape=values.shape, chunks=(min(cy, ny), min(cx, nx)), dtype="f8",
                dimension_names=("y", "x"), attributes=described[name],
            )  # fmt: skip
            arr[:] = values
        data_attrs["coordinates"] = "x_world y_world"
    for name, dtype, fill in layout.variables():
        if name == "class":
            names = list(layout.classes or ())
            attrs_v = {
                "long_name": CLASS_CODE_NAME,
                "units": "1",
                "flag_values": list(range(len(names) + 1)),
                "flag_meanings": " ".join(["unclassified", *(flag_token(n) for n in names)]),
                "class_names": names,
            }
        else:
            attrs_v = dict(described[name])
        group.create_array(
            name,
            shape=(nd, nz, ny, nx),
            chunks=(1, min(cz, nz), min(cy, ny), min(cx, nx)),
            dtype=dtype,
            fill_value=fill,
            dimension_names=DIMS,
            attributes={**attrs_v, **data_attrs},
            config={"write_empty_chunks": False},
        )
    (path / RECORDS).mkdir()
    _consolidate(path)
    return BlockStore(path, layout, plan_id)


def open_store(
    path: str | Path, layout: StoreLayout, plan_id: str, attrs: Mapping | None = None
) -> tuple[BlockStore, bool]:
    """Open the store at ``path`` for a (re)run of plan ``plan_id``.

    Returns ``(store, reused)``: the existing store when it was made for the same plan id and
    layout (its verified chunks are kept), otherwise a fresh one (``reused`` False).
    """
    path = Path(path)
    info = _store_info(path) if path.is_dir() else None
    if (
        info is not None
        and info.get("format") == FORMAT
        and info.get("plan_id") == str(plan_id)
        and info.get("layout") == layout.to_json()
    ):
        store = BlockStore(path, layout, plan_id)
        if attrs:
            store.set_attrs(attrs)
        return store, True
    return create_store(path, layout, plan_id, attrs), False


def layout_of(path: str | Path) -> tuple[StoreLayout, str]:
    """The layout and plan id of the store at ``path``.

    Raises
    ------
    DataError
        When ``path`` holds no estimator store of this format (or one written before the
        layout gained a field this version needs).
    """
    path = Path(path)
    info = _store_info(path)
    if info is None or info.get("format") != FORMAT:
        msg = f"{path}: not an estimator block-model store (no {STORE_ATTR} attribute)"
        raise DataError(msg)
    try:
        layout = StoreLayout.from_json(info["layout"])
    except (KeyError, TypeError, ValueError) as err:
        msg = f"{path}: the store's layout cannot be read ({err})"
        raise DataError(msg) from None
    return layout, str(info.get("plan_id", ""))


def _layout_of(path: Path) -> StoreLayout:
    return layout_of(path)[0]


def verify_store(path: str | Path) -> list[tuple[int, int, int]]:
    """Chunks of the store at ``path`` whose data no longer match their completion record."""
    path = Path(path)
    info = _store_info(path)
    if info is None:
        msg = f"{path}: not an estimator block-model store"
        raise DataError(msg)
    return BlockStore(path, _layout_of(path), info.get("plan_id", "")).verify()


def store_digest(path: str | Path) -> str:
    """SHA-256 naming a store's content: the bytes of every file except the data variables'
    chunks, which count by their recorded hashes (no chunk is read).

    The metadata, coordinates and completion records are hashed as they are on disk; pair it
    with :func:`verify_store` (which reads the chunks back) to trust a store found on disk.
    """
    path = Path(path)
    if _store_info(path) is None:
        msg = f"{path}: not an estimator block-model store"
        raise DataError(msg)
    data_vars = {name for name, *_ in _layout_of(path).variables()}
    h = hashlib.sha256()
    for f in sorted(q for q in path.rglob("*") if q.is_file()):
        parts = f.relative_to(path).parts
        if len(parts) > 2 and parts[0] in data_vars and parts[1] == "c":
            continue  # a data chunk: its record's hash stands for it
        if parts[0] == RECORDS:
            data = json.loads(f.read_text(encoding="utf-8"))
            h.update(f"{f.name}\0{data.get('plan_id')}\0{data.get('sha256')}\0".encode())
            continue
        h.update("/".join(parts).encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------
def open_block_model(path: str | Path, *, decode: bool = False) -> xr.Dataset:
    """The store as a lazy (dask-backed) SPEC section 5 Dataset.

    Dims ``(domain, z, y, x)``, dask chunks = the store's chunks. ``class`` holds the integer
    codes unless ``decode`` (which loads it and turns it into labels, see
    :func:`decode_classes`). The internal ``estimator_store`` attribute is left out.
    """
    path = Path(path)
    if not (path / "zarr.json").is_file():
        msg = f"{path}: no block-model store here (zarr.json missing)"
        raise DataError(msg)
    ds = xr.open_zarr(str(path), consolidated=True)
    ds.attrs.pop(STORE_ATTR, None)
    domain = ds["domain"]
    names = np.array([str(d) for d in np.asarray(domain.values).tolist()])
    ds = ds.assign_coords(domain=("domain", names, domain.attrs))
    ds = decode_classes(ds) if decode else ds
    # readers that stream (the report) take the stored chunks one by one, skipping those
    # never written, instead of a dask window over every chunk of the grid
    ds.encoding["iter_chunks"] = functools.partial(iter_chunks, path)
    return ds


def model_arrays(ds: xr.Dataset, layout: StoreLayout, source: str = "") -> dict[str, np.ndarray]:
    """The chunked variables of an in-memory block model, as a store of ``layout`` holds them.

    For a previous ``blockmodel.nc`` read whole: every variable of :meth:`StoreLayout.variables`
    as a ``(domain, z, y, x)`` NumPy array of the layout's dtype, ``class`` labels turned back
    into codes (``""`` = 0, the k-th class name = k).

    Raises
    ------
    DataError
        When the Dataset's domains, sizes or a variable do not match the layout (``source``
        names the file in the message).
    """
    where = source or "the previous block model"
    nx, ny, nz = layout.grid.shape
    want = {"domain": len(layout.domains), "z": nz, "y": ny, "x": nx}
    sizes = {d: int(ds.sizes.get(d, -1)) for d in DIMS}
    if sizes != want:
        msg = f"{where}: sizes {sizes}, expected {want} (the grid or the domains differ)"
        raise DataError(msg)
    names = [str(d) for d in np.asarray(ds["domain"].values).tolist()]
    if names != list(layout.domains):
        msg = f"{where}: domains {names}, expected {list(layout.domains)}"
        raise DataError(msg)
    out = {}
    for name, dtype, _ in layout.variables():
        if name not in ds.data_vars:
            msg = f"{where}: no variable {name} (made by an older estimator, or another run)"
            raise DataError(msg)
        var = ds[name].transpose(*DIMS)
        values = np.asarray(var.values)
        if name == "class" and values.dtype.kind not in "iu":
            lookup = {"": 0, **{c: k for k, c in enumerate(layout.classes or (), start=1)}}
            labels = values.astype(str)
            unknown = sorted(set(np.unique(labels).tolist()) - set(lookup))
            if unknown:
                msg = f"{where}: class labels {unknown} are not classes of this run"
                raise DataError(msg)
            codes = np.zeros(labels.shape, dtype=dtype)
            for label, code in lookup.items():
                codes[labels == label] = code
            values = codes
        elif values.dtype != dtype:
            with np.errstate(invalid="ignore"):
                same = np.asarray(values, dtype=dtype)
            if not np.array_equal(same, values, equal_nan=values.dtype.kind == "f"):
                msg = f"{where}: variable {name} holds {values.dtype} values, expected {dtype}"
                raise DataError(msg)
            values = same
        out[name] = np.ascontiguousarray(values)
    return out


def decode_classes(ds: xr.Dataset) -> xr.Dataset:
    """``class`` codes to labels (``""`` = unclassified), as the in-memory block model has them."""
    if "class" not in ds or ds["class"].dtype.kind not in "iu":
        return ds
    var = ds["class"]
    names = [str(n) for n in np.ravel(var.attrs.get("class_names", []))]
    lookup = np.array(["", *names], dtype=object)
    labels = lookup[np.asarray(var.values)].astype(str)
    return ds.assign(
        {"class": (var.dims, labels, {"long_name": variable_attrs([])["class"]["long_name"]})}
    )


def iter_chunks(
    path: str | Path,
    variables: Sequence[str] | None = None,
    indices: Sequence[Sequence[int]] | None = None,
) -> Iterator[xr.Dataset]:
    """The store's chunks one at a time, as small Datasets, in the fixed chunk order.

    Parameters
    ----------
    path : path
        The store.
    variables : sequence of str, optional
        Chunked variables to read (default all).
    indices : sequence of chunk indices, optional
        Default: the chunks with a completion record (the others hold fill values only).
    """
    import zarr

    path = Path(path)
    layout = _layout_of(path)
    store = BlockStore(path, layout, "")
    names = [v[0] for v in layout.variables()] if variables is None else list(variables)
    group = zarr.open_group(str(path), mode="r")
    attrs = {name: dict(group[name].attrs) for name in names}
    for a in attrs.values():
        a.pop("coordinates", None)
    xc, yc, zc = layout.grid.centres_local()
    todo = store.recorded() if indices is None else [tuple(i) for i in indices]
    for index in todo:
        zs, ys, xs = layout.window(index)
        data = store.read_chunk(index, names)
        ds = xr.Dataset(
            {name: (DIMS, data[name], attrs[name]) for name in names},
            coords={"domain": list(layout.domains), "z": zc[zs], "y": yc[ys], "x": xc[xs]},
            attrs=dict(group.attrs),
        )
        ds.attrs.pop(STORE_ATTR, None)
        yield ds


def to_netcdf(store_path: str | Path, nc_path: str | Path) -> xr.Dataset:
    """Write the store as one NetCDF file (small models), classes decoded to labels.

    The file holds the same Dataset as the in-memory estimate (``blockmodel.nc``), written
    atomically by :func:`estimator.io.output.write_netcdf`; that Dataset (in memory) is
    returned.
    """
    from estimator.io.output import write_netcdf

    path = Path(store_path)
    ds = xr.open_zarr(str(path), consolidated=True, chunks=None).load()
    ds.attrs.pop(STORE_ATTR, None)
    names = np.array([str(d) for d in np.asarray(ds["domain"].values).tolist()])
    ds = ds.assign_coords(domain=("domain", names, ds["domain"].attrs))
    ds = decode_classes(ds).drop_encoding()
    for name in ds.variables:
        ds[name].attrs.pop("coordinates", None)
    write_netcdf(nc_path, ds)
    return ds
