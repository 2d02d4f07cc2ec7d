"""What a stage's result depends on, as hashes: the config keys it declares, the contents of
the files those keys name, the artefacts of earlier stages and the estimator version.

Pure functions of the typed config and of file hashes given by the caller; nothing here opens
a file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["config_document", "input_hash", "project", "what_changed"]

#: Config fields that name input files: hashed by content, so moving a project folder (or a run
#: made from another folder) does not make a stage look changed.
FILE_KEYS = (
    ("data", "collars"),
    ("data", "surveys"),
    ("data", "zones"),
    ("data", "samples"),
    ("data", "topography"),
)


def _sha(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def config_document(cfg, file_hash: Callable[[str], str]) -> dict:
    """The config as a JSON document in which every input file is its content hash.

    Parameters
    ----------
    cfg : RunConfig
    file_hash : callable
        ``path -> sha256`` (the caller caches and reads files).
    """
    doc = cfg.model_dump(mode="json")

    def h(path):
        return None if path is None else "sha256:" + file_hash(path)

    for section, key in FILE_KEYS:
        if doc.get(section, {}).get(key) is not None:
            doc[section][key] = h(doc[section][key])
    for entry in doc.get("data", {}).get("assays", []):
        entry["path"] = h(entry["path"])
    for d in doc.get("domains", []):
        if d.get("wireframe") is not None:
            d["wireframe"] = h(d["wireframe"])
    return doc


def _get(doc: Any, parts: Sequence[str]) -> Any:
    if not parts:
        return doc
    head, rest = parts[0], parts[1:]
    if head.endswith("[*]"):
        items = doc.get(head[:-3]) if isinstance(doc, dict) else None
        if not isinstance(items, list):
            return None
        return [_get(item, rest) for item in items]
    if not isinstance(doc, dict):
        return None
    return _get(doc.get(head), rest)


def project(doc: Mapping, paths: Sequence[str]) -> dict[str, Any]:
    """The values of the declared key paths: ``{"domains[*].density": [2.9, 2.7], ...}``.

    Examples
    --------
    >>> project({"a": {"b": 1, "c": 2}, "d": [{"e": 1, "f": 2}]}, ["a.b", "d[*].e"])
    {'a.b': 1, 'd[*].e': [1]}
    """
    return {path: _get(doc, path.split(".")) for path in paths}


def input_hash(
    stage: str, config: Mapping[str, Any], upstream: Mapping[str, str], version: str
) -> tuple[str, dict]:
    """The input hash of a stage and its components (kept to say later what changed).

    Components: ``config`` (a hash per declared key path), ``upstream`` (artefact -> hash) and
    ``version``.
    """
    components = {
        "config": {k: _sha(v) for k, v in sorted(config.items())},
        "upstream": dict(sorted(upstream.items())),
        "version": version,
    }
    return _sha({"stage": stage, **components}), components


def what_changed(before: Mapping | None, now: Mapping) -> str:
    """Why a stage cannot be reused, in words: the keys, artefacts or version that differ."""
    if not before:
        return "no earlier result"
    why = []
    if before.get("version") != now.get("version"):
        why.append(f"estimator {before.get('version')} -> {now.get('version')}")
    keys = sorted(
        k
        for k in set(before.get("config", {})) | set(now.get("config", {}))
        if before.get("config", {}).get(k) != now.get("config", {}).get(k)
    )
    if keys:
        why.append("config " + ", ".join(keys))
    arts = sorted(
        k
        for k in set(before.get("upstream", {})) | set(now.get("upstream", {}))
        if before.get("upstream", {}).get(k) != now.get("upstream", {}).get(k)
    )
    if arts:
        why.append("new " + ", ".join(arts))
    return "; ".join(why) or "its files changed"
