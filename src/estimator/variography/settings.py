"""Settings of the variography stage (config ``variography.<domain>.<grade>``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from estimator.variography.experimental import MEASURES, Direction
from estimator.variography.models import STRUCTURE_TYPES


@dataclass(frozen=True)
class VariographySettings:
    """Settings of the variography stage (config ``variography.<domain>.<grade>``).

    ``experimental`` group: ``lag`` (None: :func:`default_lag`, and fitted ranges are then bounded
    by the largest lag), ``n_lags`` (with a default lag, raised when needed so the lags reach
    half the domain's longest extent, at most 2.5x),
    ``lag_tolerance`` (None: lag / 2), ``tolerance`` (degrees), ``dip_tolerance`` (None: same),
    ``bandwidth_h`` and ``bandwidth_v`` (None: no limit), ``measure``, ``normal_score``,
    ``downhole_lag`` (None: median spacing down the holes), ``downhole_n_lags`` (positioned
    samples without holes have no down-hole variogram and no nugget floor).
    ``fit`` group: ``n_structures``, ``types``, ``nugget`` (a number fixes it), ``nugget_method``
    (``"fit"``: fitted with the structures, starting from the down-hole estimate; ``"downhole"``:
    the down-hole variogram's first ``nugget_lags`` lags extrapolated to zero and kept),
    ``nugget_lags``, ``angles`` (None: found), ``fan_step``,
    ``refine_orientation``, ``include_downhole``, ``min_pairs``, ``pair_sample`` (pairs kept
    per lag to model each lag as the mean of the model over its own pairs; 0: the model at the
    lag's mean distance along the nominal direction), ``nugget_floor`` (a fitted nugget stays at
    or above this fraction of the down-hole nugget), ``tabular`` (when the composites' smallest
    principal spread is below this fraction of the middle one, the domain is taken as tabular: the
    minor axis is the normal of its plane and the major axis is fitted on the variogram map in
    that plane, a fan as fallback; 0 turns it off), ``tabular_check`` (below this ratio but above ``tabular``, both that and the
    free orientation are fitted and the one with the lower leave-holes-out cross-validation RMSE
    is kept), ``max_anisotropy`` (largest ratio between two ranges of one structure, major /
    semi-major and major / minor included, in the fit of the structures (not in the one-structure
    orientation fit that places the axes and starts it); 0 or None: no bound).
    """

    lag: float | None = None
    n_lags: int = 12
    lag_tolerance: float | None = None
    tolerance: float = 22.5
    dip_tolerance: float | None = None
    bandwidth_h: float | None = None
    bandwidth_v: float | None = None
    measure: str = "semivariogram"
    normal_score: bool = False
    downhole_lag: float | None = None
    downhole_n_lags: int = 10
    n_structures: int = 2
    types: tuple[str, ...] = ("spherical",)
    nugget: float | None = None
    nugget_method: str = "fit"
    nugget_lags: int = 3
    angles: tuple[float, float, float] | None = None
    fan_step: float = 15.0
    refine_orientation: bool = True
    include_downhole: bool = True
    min_pairs: int = 30
    pair_sample: int = 200
    nugget_floor: float = 1.0
    tabular: float = 0.3
    tabular_check: float = 0.6
    max_anisotropy: float | None = 20.0

    def __post_init__(self):
        if self.measure not in MEASURES:
            msg = f"variography measure {self.measure!r} is not one of {', '.join(MEASURES)}"
            raise ValueError(msg)
        if not 1 <= int(self.n_structures) <= 3:
            msg = f"n_structures must be 1, 2 or 3; got {self.n_structures!r}"
            raise ValueError(msg)
        if self.nugget_method not in ("fit", "downhole"):
            msg = f"nugget_method must be 'fit' or 'downhole'; got {self.nugget_method!r}"
            raise ValueError(msg)
        if self.max_anisotropy and self.max_anisotropy < 1.0:
            msg = f"max_anisotropy must be at least 1 (0 or None: no bound); got {self.max_anisotropy!r}"
            raise ValueError(msg)
        bad = [t for t in self.types if t not in STRUCTURE_TYPES]
        if bad:
            msg = f"unknown structure types {bad!r}; expected {', '.join(STRUCTURE_TYPES)}"
            raise ValueError(msg)

    @classmethod
    def from_dict(cls, d: dict | None) -> VariographySettings:
        """Build from a flat dict or from ``{"experimental": {...}, "fit": {...}}``."""
        d = dict(d or {})
        flat = {**d.pop("experimental", {}), **d.pop("fit", {}), **d}
        flat.pop("model", None)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(flat) - names)
        if unknown:
            msg = f"unknown variography settings {unknown}; expected some of {sorted(names)}"
            raise ValueError(msg)
        if "types" in flat:
            flat["types"] = tuple(flat["types"])
        if flat.get("angles") is not None:
            flat["angles"] = tuple(float(a) for a in flat["angles"])
        return cls(**flat)

    def to_dict(self) -> dict:
        """Plain dict of every field (types as a list)."""
        d = asdict(self)
        d["types"] = list(self.types)
        return d


def _structure_types(types, n):
    return tuple(types[i % len(types)] for i in range(n))


def principal_directions(settings: VariographySettings, ranges=None) -> list[Direction]:
    """The three principal directions, read in the frame of the model's axes.

    The minor axis is vertical in that frame, so its azimuth tolerance is 90 degrees (a cone of
    half-angle ``dip_tolerance`` around it). Bandwidths left as None in ``settings`` are half the
    semi-major (``bandwidth_h``) and minor (``bandwidth_v``) of ``ranges`` when given (they keep
    pairs off the major axis from shortening its apparent range), else unlimited.
    """
    tol = settings.tolerance
    dtol = tol if settings.dip_tolerance is None else settings.dip_tolerance
    bh, bv = (math.inf, math.inf) if ranges is None else (0.5 * ranges[1], 0.5 * ranges[2])
    bh = bh if settings.bandwidth_h is None else settings.bandwidth_h
    bv = bv if settings.bandwidth_v is None else settings.bandwidth_v
    return [
        Direction(0.0, 0.0, tol, dtol, bh, bv, name="major"),
        Direction(90.0, 0.0, tol, dtol, bh, bv, name="semi-major"),
        Direction(0.0, -90.0, 90.0, dtol, bh, bv, name="minor"),
    ]
