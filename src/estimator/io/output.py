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
    import dask
    import dask.local

    # level 1 with the shuffle filter: nearly the size of level 4 at a third of the time
    encoding = {
        name: {"zlib": True, "complevel": 1, "shuffle": True}
        for name, var in ds.data_vars.items()
        if var.dtype.kind in "fiu" and var.ndim > 1
    }
    # a callable scheduler: dask would import distributed just to look for a client
    with atomic_path(path) as tmp, dask.config.set(scheduler=dask.local.get_sync):
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


# ---------------------------------------------------------------------------------------
# run folders: checks, lock, staging
# ---------------------------------------------------------------------------------------
#: Name of the lock file a run holds in its folder while it writes there.
LOCK_NAME = ".estimator.lock"
#: Prefix of the staging folder a run writes into before its outputs are moved into place.
STAGING_PREFIX = ".staging-"
#: Prefix of a stage's work folder kept across runs (an interrupted estimate resumes from it).
PARTIAL_PREFIX = ".partial-"
#: Outputs that are folders replaced as a whole (a block-model store), never merged file by file.
UNIT_SUFFIXES = (".zarr",)


def check_output_folder(path: str | Path, inputs=(), what: str = "output") -> Path:
    """Make sure ``path`` can be a folder we write into; nothing is created here.

    Raises :class:`~estimator.errors.DataError` when ``path`` is an existing file, lies under a
    file, cannot be written, or is the folder of an input file that a run output would replace.
    """
    from estimator.errors import DataError

    path = Path(path)
    if path.exists() and not path.is_dir():
        msg = f"{what}: {path} is an existing file, not a folder; give a folder for the outputs"
        raise DataError(msg)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        msg = f"{what}: {path} lies under {probe}, which is a file, not a folder"
        raise DataError(msg)
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        msg = f"{what}: cannot write in {probe} (permission denied); choose another folder"
        raise DataError(msg)
    return path


def check_no_input_overwritten(folder: Path, inputs, names, what: str = "output") -> None:
    """Refuse when an output named in ``names`` would replace one of the ``inputs`` files."""
    from estimator.errors import DataError

    folder = Path(folder).resolve()
    clash = []
    targets = {(folder / n).resolve() for n in names}
    for p in inputs:
        rp = Path(p).resolve()
        if rp in targets or any(t in rp.parents for t in targets):
            clash.append(str(p))
    if clash:
        msg = (
            f"{what}: {folder} holds input file(s) {', '.join(clash)} that the run would "
            "overwrite; write the outputs to another folder"
        )
        raise DataError(msg)


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold ``folder/.estimator.lock`` while a run writes the folder.

    A lock left by a process that no longer runs on this machine is taken over; a live one is a
    :class:`~estimator.errors.DataError` naming its process and start time.
    """
    import socket
    import time

    from estimator.errors import DataError

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    host = socket.gethostname()
    me = {"pid": os.getpid(), "host": host, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(lock.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                held = {}
            pid, other = held.get("pid"), held.get("host")
            if other == host and isinstance(pid, int) and not _alive(pid):
                lock.unlink(missing_ok=True)  # left by a run that was killed
                continue
            msg = (
                f"{folder} is being written by another estimator run (process {pid} on "
                f"{other}, started {held.get('started')}); wait for it, or delete {lock} "
                "if that run is dead"
            )
            raise DataError(msg) from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        break
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Delete temporary files and staging folders left by killed runs; return what went."""
    import shutil

    folder = Path(folder)
    gone = []
    for sub in (folder, folder / "plots"):
        if not sub.is_dir():
            continue
        for p in sub.iterdir():
            if p.is_file() and p.name.startswith(".") and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
                gone.append(p)
    for p in folder.glob(f"{STAGING_PREFIX}*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
    return gone


def make_staging(folder: str | Path, run_id: str) -> Path:
    """A fresh staging folder inside ``folder`` (same file system, so moves are renames)."""
    path = Path(folder) / f"{STAGING_PREFIX}{run_id}"
    path.mkdir(parents=True)
    return path


def list_files(folder: str | Path) -> list[str]:
    """Every file under ``folder`` as a relative POSIX path, sorted."""
    folder = Path(folder)
    return sorted(
        rel
        for p in folder.rglob("*")
        if p.is_file() and not (rel := p.relative_to(folder).as_posix()).startswith(".")
        and "/." not in rel
    )


def move_folder(source: str | Path, target: str | Path) -> Path:
    """Rename a folder to ``target`` (same file system), replacing what is there."""
    import shutil

    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    os.replace(source, target)
    return target


def remove_folder(path: str | Path) -> None:
    """Delete a folder and what it holds (a stage's work folder once its output is kept)."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def remove_partials(folder: str | Path) -> None:
    """Delete the work folders of interrupted stages (after a run that finished)."""
    for p in Path(folder).glob(f"{PARTIAL_PREFIX}*"):
        remove_folder(p)


def publish(staging: str | Path, folder: str | Path, remove=()) -> None:
    """Move every file of ``staging`` into ``folder`` (renames), delete the relative paths in
    ``remove`` that were not replaced, then delete ``staging``. A block-model store
    (``*.zarr``) is moved as a whole, replacing the old one."""
    import shutil

    staging, folder = Path(staging), Path(folder)
    units = [p.name for p in staging.iterdir() if p.is_dir() and p.name.endswith(UNIT_SUFFIXES)]
    for name in units:
        move_folder(staging / name, folder / name)
    names = [n for n in list_files(staging) if n.split("/")[0] not in units]
    for name in names:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(staging / name, target)
    for name in remove:
        if name in names or name in units:
            continue
        target = folder / name
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    for sub in sorted({(folder / n).parent for n in remove}, reverse=True):
        if sub != folder and sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()


def read_json(path: str | Path, what: str = "file") -> dict:
    """Read a JSON object; a missing, empty, truncated or non-object file is a DataError."""
    from estimator.errors import DataError

    path = Path(path)
    if not path.is_file():
        msg = f"{path}: not found"
        raise DataError(msg)
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        msg = f"{path}: the {what} is empty (a run killed while writing it?)"
        raise DataError(msg)
    try:
        doc = json.loads(text)
    except ValueError as err:
        msg = f"{path}: the {what} is not valid JSON ({err}); it may be truncated"
        raise DataError(msg) from None
    if not isinstance(doc, dict):
        msg = f"{path}: the {what} should hold a JSON object, found {type(doc).__name__}"
        raise DataError(msg)
    return doc


def copy_path(source: str | Path, target: str | Path) -> Path:
    """Copy a file or a folder (a block-model store) to ``target``."""
    import shutil

    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=False)
    else:
        shutil.copy2(source, target)
    return target


def snapshot(folder: str | Path, names, target: str | Path) -> Path:
    """Hard-link the files (and folders) ``names`` of ``folder`` under ``target``.

    Hard links keep the files' contents alive when the originals are replaced or removed, at
    no copy cost; where the file system refuses them the files are copied.
    """
    import shutil

    folder, target = Path(folder), Path(target)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    for name in names:
        src = folder / name
        dst = target / name
        if src.is_dir():
            shutil.copytree(src, dst, copy_function=link)
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            link(src, dst)
    return target
