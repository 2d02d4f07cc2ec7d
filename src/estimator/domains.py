"""Domain flagging: give every assay interval the estimation domain it belongs to.

Rules, in order of precedence:

1. **Logged zones win.** Where a logged zone interval (``zones`` table) covers an assay, the
   assay's domain is the zone code mapped through ``code_to_domain``. A code that is not in the
   map means "no domain" (``""``): the interval is outside every domain and the wireframe is not
   consulted; each such code is reported once (``zone_code_unmapped``).
2. **Wireframes** give the domain of intervals that no logged zone covers: ``wireframe_domain``
   is the domain of each assay row at its mid-point, computed by the caller (``""`` = outside
   every wireframe; ``None`` = no wireframes, so such intervals get ``""``).
3. An assay interval that straddles a logged zone boundary is **split** at the boundary; each
   piece keeps the assay's grades, tranche, ``_file`` and ``_line`` (one
   ``split_at_zone_boundary`` report row per split assay). A piece that no zone covers takes
   the wireframe domain of the whole assay (its mid-point is the only one the caller gave).
4. Where a logged zone and the wireframe both give a domain and they disagree, the logged
   zone is used and the interval is reported (``zone_wireframe_disagree``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from estimator.datareport import DataReport

__all__ = ["flag_domains"]


def _file_line(frame: pd.DataFrame, i: int) -> tuple[object, object]:
    file = frame["_file"].iat[i] if "_file" in frame.columns else None
    line = frame["_line"].iat[i] if "_line" in frame.columns else None
    return file, line


def _hole_codes(*columns) -> list[np.ndarray]:
    """Integer hole codes shared by several hole_id columns (robust to str/object dtypes)."""
    values = [np.asarray(c.astype(str).to_numpy(dtype=object), dtype=object) for c in columns]
    codes, _ = pd.factorize(np.concatenate(values)) if values else (np.empty(0), None)
    out, at = [], 0
    for v in values:
        out.append(codes[at : at + v.size].astype(np.int64))
        at += v.size
    return out


def _split_points(assay_hole, assays: pd.DataFrame, zone_hole, zones: pd.DataFrame) -> pd.DataFrame:
    """Zone boundaries strictly inside an assay: columns ``row`` (assay position), ``cut``."""
    bounds = pd.DataFrame(
        {
            "hole": np.tile(zone_hole, 2),
            "cut": np.concatenate(
                (zones["from"].to_numpy(dtype=float), zones["to"].to_numpy(dtype=float))
            ),
        }
    ).drop_duplicates()
    left = pd.DataFrame(
        {
            "hole": assay_hole,
            "row": np.arange(len(assays)),
            "from": assays["from"].to_numpy(dtype=float),
            "to": assays["to"].to_numpy(dtype=float),
        }
    )
    both = left.merge(bounds, on="hole", how="inner")
    inside = (both["cut"] > both["from"]) & (both["cut"] < both["to"])
    return both.loc[inside, ["row", "cut"]].sort_values(["row", "cut"], kind="stable")


def _zone_at(hole: np.ndarray, mids: np.ndarray, zone_hole, zones: pd.DataFrame) -> np.ndarray:
    """Zone code covering each (hole, mid-point), or None where no zone covers it."""
    z = pd.DataFrame(
        {
            "hole": zone_hole,
            "zfrom": zones["from"].to_numpy(dtype=float),
            "zto": zones["to"].to_numpy(dtype=float),
            "zone": np.arange(len(zones)),
        }
    ).sort_values("zfrom", kind="stable")
    q = pd.DataFrame({"hole": hole, "mid": mids, "q": np.arange(mids.size)}).sort_values(
        "mid", kind="stable"
    )
    hit = pd.merge_asof(q, z, left_on="mid", right_on="zfrom", by="hole", direction="backward")
    found = hit["zone"].notna().to_numpy()
    covered = found & (hit["zto"].to_numpy(dtype=float) > hit["mid"].to_numpy(dtype=float))
    codes = zones["zone"].astype(str).to_numpy(dtype=object)
    out = np.full(mids.size, None, dtype=object)
    out[hit["q"].to_numpy()[covered]] = codes[hit["zone"].to_numpy()[covered].astype(np.int64)]
    return out


def flag_domains(
    assays: pd.DataFrame,
    zones: pd.DataFrame | None,
    code_to_domain: dict[str, str],
    wireframe_domain: np.ndarray | None,
    report: DataReport,
) -> pd.DataFrame:
    """Add a ``domain`` column to the assays (splitting intervals at logged zone boundaries).

    Parameters
    ----------
    assays : pandas.DataFrame
        ``hole_id, from, to, tranche, <grades>, _file, _line`` (depths in the data's units).
    zones : pandas.DataFrame or None
        Logged intervals ``hole_id, from, to, zone`` (+ ``_file, _line``); ``None`` or empty
        when no zones are logged.
    code_to_domain : dict of str to str
        Logged zone code -> domain name (from each domain's ``zone_code``).
    wireframe_domain : numpy.ndarray or None
        Domain name of each assay row at its mid-point (``""`` = outside every wireframe),
        aligned with ``assays`` rows; ``None`` when there are no wireframes.
    report : DataReport
        Receives ``zone_code_unmapped``, ``split_at_zone_boundary`` and
        ``zone_wireframe_disagree`` rows.

    Returns
    -------
    pandas.DataFrame
        The assays (pieces where split, in hole and depth order of the input) with a ``domain``
        column (``""`` = outside every domain) and a fresh ``RangeIndex``.

    Raises
    ------
    ValueError
        If ``wireframe_domain`` does not have one entry per assay row.

    Notes
    -----
    See the module docstring for the rules. The zone covering a piece is the one whose
    ``[from, to)`` contains the piece's mid-point (if logged zones overlap, the one that starts
    last before the mid-point).
    """
    n = len(assays)
    if wireframe_domain is None:
        wire = np.full(n, "", dtype=object)
    else:
        wire = np.asarray(wireframe_domain, dtype=object).ravel()
        if wire.size != n:
            msg = f"wireframe_domain has {wire.size} entries for {n} assay rows"
            raise ValueError(msg)
        wire = np.where(pd.isna(wire), "", wire).astype(str).astype(object)

    if zones is None or len(zones) == 0:
        out = assays.reset_index(drop=True).copy()
        out["domain"] = pd.Series(wire, dtype=object).astype(str)
        return out

    # --- split at zone boundaries -----------------------------------------------------------
    assay_hole, zone_hole = _hole_codes(assays["hole_id"], zones["hole_id"])
    cuts = _split_points(assay_hole, assays, zone_hole, zones)
    row = np.concatenate((np.arange(n), cuts["row"].to_numpy()))
    start = np.concatenate((assays["from"].to_numpy(dtype=float), cuts["cut"].to_numpy()))
    order = np.lexsort((start, row))
    row, start = row[order], start[order]
    end = np.empty_like(start)
    end[:-1] = start[1:]
    last_piece = np.ones(row.size, dtype=bool)
    last_piece[:-1] = row[1:] != row[:-1]
    end[last_piece] = assays["to"].to_numpy(dtype=float)[row[last_piece]]

    for r, at in cuts.groupby("row", sort=True)["cut"]:
        r = int(r)
        at = at.to_numpy()
        file, line = _file_line(assays, r)
        report.add(
            file,
            line,
            assays["hole_id"].iat[r],
            "split_at_zone_boundary",
            f"interval {assays['from'].iat[r]:g}-{assays['to'].iat[r]:g} straddles a logged "
            f"zone boundary at {', '.join(f'{c:g}' for c in at)}",
            f"split into {at.size + 1} intervals with the same grades",
        )

    out = assays.iloc[row].reset_index(drop=True).copy()
    out["from"] = start
    out["to"] = end

    # --- domain of each piece ---------------------------------------------------------------
    holes = out["hole_id"].to_numpy(dtype=object)
    code = _zone_at(assay_hole[row], 0.5 * (start + end), zone_hole, zones)
    logged = np.array([c is not None for c in code], dtype=bool)
    mapped = np.array(
        [code_to_domain.get(c, "") if c is not None else "" for c in code], dtype=object
    )
    piece_wire = wire[row]
    domain = np.where(logged, mapped, piece_wire)
    out["domain"] = pd.Series(domain, dtype=object).astype(str)

    _report_unmapped(zones, code_to_domain, report)
    disagree = np.flatnonzero(logged & (mapped != "") & (piece_wire != "") & (mapped != piece_wire))
    for i in disagree:
        file, line = _file_line(out, int(i))
        report.add(
            file,
            line,
            holes[i],
            "zone_wireframe_disagree",
            f"interval {start[i]:g}-{end[i]:g} is logged as {code[i]!r} (domain "
            f"{mapped[i]!r}) but lies in wireframe {piece_wire[i]!r}",
            "logged zone used",
        )
    return out


def _report_unmapped(zones: pd.DataFrame, code_to_domain: dict[str, str], report) -> None:
    codes = zones["zone"].astype(str).to_numpy(dtype=object)
    unmapped = np.array([c not in code_to_domain for c in codes], dtype=bool)
    if not unmapped.any():
        return
    seen: dict[str, list[int]] = {}
    for i in np.flatnonzero(unmapped):
        seen.setdefault(codes[i], []).append(int(i))
    for code, rows in seen.items():
        file, line = _file_line(zones, rows[0])
        report.add(
            file,
            line,
            zones["hole_id"].iat[rows[0]],
            "zone_code_unmapped",
            f"zone code {code!r} is not the zone_code of any domain ({len(rows)} logged "
            f"intervals, first here)",
            "intervals logged with it treated as outside every domain",
        )


def wireframe_domains(domains, wireframes: dict, xyz: np.ndarray) -> np.ndarray:
    """Domain name of each point from the wireframes ("" outside all).

    Parameters
    ----------
    domains : sequence
        Domain configs (with ``.name``) in config order: where wireframes overlap, the first
        domain wins.
    wireframes : dict
        ``{name: Wireframe}``; domains without a wireframe are skipped.
    xyz : numpy.ndarray, shape (n, 3)
    """
    from estimator.geometry.mesh import points_inside

    out = np.full(len(xyz), "", dtype=object)
    for d in domains:
        wf = wireframes.get(d.name)
        if wf is None:
            continue
        inside = points_inside(wf.vertices, wf.faces, xyz) & (out == "")
        out[inside] = d.name
    return out


def sample_domains(samples: pd.DataFrame, code_to_domain: dict[str, str], wire, report) -> np.ndarray:
    """Domain of each positioned sample: its logged zone code where it has one, else the
    wireframe it lies in (the rules of :func:`flag_domains`, for points).

    Parameters
    ----------
    samples : pandas.DataFrame
        ``zone`` ("" = not logged), ``hole_id``, ``_file``, ``_line``.
    code_to_domain : dict
        Zone code -> domain name.
    wire : numpy.ndarray
        Domain of each sample by the wireframes ("" = outside every one).
    report : DataReport
        Receives ``zone_code_unmapped`` (one row per code) and ``zone_wireframe_disagree``.
    """
    wire = np.asarray(wire, dtype=object)
    if "zone" not in samples or not code_to_domain:
        return wire
    code = samples["zone"].astype(str).to_numpy(dtype=object)
    logged = code != ""
    mapped = np.array([code_to_domain.get(c, "") for c in code], dtype=object)
    out = np.where(logged, mapped, wire)
    zones = samples.loc[logged].assign(zone=code[logged])
    if len(zones):
        _report_unmapped(zones, code_to_domain, report)
    for i in np.flatnonzero(logged & (mapped != "") & (wire != "") & (mapped != wire)):
        file, line = _file_line(samples, int(i))
        report.add(
            file, line, samples["hole_id"].iat[i], "zone_wireframe_disagree",
            f"sample logged as {code[i]!r} (domain {mapped[i]!r}) lies in wireframe {wire[i]!r}",
            "logged zone used",
        )  # fmt: skip
    return out
