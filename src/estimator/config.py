"""The run configuration: pydantic models for every section of SPEC section 3.

``load_config(path)`` reads the YAML once, resolves relative paths against the config file's
folder, checks that input files exist and validates everything before any work starts. Every
problem becomes one line ``key.path: what is wrong (got value)`` in a single ``ConfigError``.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import reprlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from estimator.errors import ConfigError

__all__ = ["RunConfig", "load_config", "parse_config"]

log = logging.getLogger(__name__)


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base")
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return Path(os.path.normpath(path))


def _resolve_existing(value: Path, info: ValidationInfo) -> Path:
    path = _resolve(value, info)
    if (info.context or {}).get("check_files", True):
        if path.is_dir():
            msg = f"{path} is a folder, not a file: give the file inside it"
            raise ValueError(msg)
        if not path.exists():
            msg = f"file not found: {path}"
            raise ValueError(msg)
    return path


#: A path resolved against the config's folder (output folders).
OutPath = Annotated[Path, AfterValidator(_resolve)]
#: An input file, resolved and checked to exist.
InPath = Annotated[Path, AfterValidator(_resolve_existing)]
Triple = tuple[float, float, float]
PositiveTriple = tuple[PositiveFloat, PositiveFloat, PositiveFloat]
IntTriple = tuple[PositiveInt, PositiveInt, PositiveInt]


class _Section(BaseModel):
    # allow_inf_nan=False: .inf and .nan are refused at load for every number of the config
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# -- data -----------------------------------------------------------------------------------
class AssayFile(_Section):
    """One assay file (a tranche of results)."""

    path: InPath
    tranche: str | None = None

    @field_validator("tranche", mode="before")
    @classmethod
    def _as_text(cls, v: Any) -> Any:
        # load_config keeps the YAML text of a tranche (2011-06-28, 1.50) as written; a mapping
        # built in Python may still hold a date or a number
        if isinstance(v, (datetime.date, int, float)) and not isinstance(v, bool):
            return v.isoformat() if isinstance(v, datetime.date) else str(v)
        return v


class DataConfig(_Section):
    """Input tables and the value rules (SPEC section 2)."""

    collars: InPath | None = None
    surveys: InPath | None = None
    assays: list[AssayFile] = Field(default_factory=list)
    zones: InPath | None = None
    samples: InPath | None = None
    dip: Literal["negative_down", "positive_down"] = "negative_down"
    columns: dict[str, str] = Field(default_factory=dict)
    below_detection: Literal["half", "zero", "limit"] = "half"
    unsampled: Literal["nan", "zero"] = "nan"
    sentinels: list[float] = Field(default_factory=lambda: [-99.0, -999.0])
    length_unit: str | None = None
    grade_unit: str | None = None
    #: Grades above this are implausible (a typing or export error): reported, set to NaN.
    #: One value for every grade or ``{grade: value}``; default 100 for ``%`` and 1e6 otherwise.
    max_grade: PositiveFloat | dict[str, PositiveFloat] | None = None
    #: Open triangulated surface (OBJ / STL / PLY); block volume above it is not estimated.
    topography: InPath | None = None

    @field_validator("assays", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, (str, Path, dict)):
            v = [v]
        return [{"path": item} if isinstance(item, (str, Path)) else item for item in v]

    @model_validator(mode="after")
    def _drillholes_or_samples(self) -> DataConfig:
        if self.samples is None:
            missing = [k for k in ("collars", "assays") if not getattr(self, k)]
            if missing:
                msg = (
                    f"no {' and no '.join(missing)} given: configure data.collars, data.surveys and "
                    "data.assays (drillholes) or data.samples (positioned points)"
                )
                raise ValueError(msg)
        return self

    @property
    def drillholes(self) -> bool:
        """True when the data are drillholes (collars/surveys/assays), not positioned samples."""
        return self.samples is None


# -- domains, compositing, capping ----------------------------------------------------------
class BlockRuleConfig(_Section):
    """How the blocks of a domain without a wireframe are found (``domains[].blocks``).

    ``rule: nearest_sample``: each sub-cell of a block takes the domain of the nearest sample
    (assay interval mid-point, or positioned sample), when that sample lies within
    ``max_distance`` (data units, isotropic); farther sub-cells belong to no domain. Samples
    outside every domain count too, so waste drilled around a zone bounds it.
    """

    rule: Literal["nearest_sample"]
    max_distance: PositiveFloat


class DensityModel(_Section):
    """``domains[].density: {grade: sg, default: 2.8}``: each block's density is its estimate of
    ``grade`` (a grade listed in ``grades``, estimated like the others); blocks without an
    estimate take ``default`` (counted in the report)."""

    grade: str
    default: PositiveFloat


class DomainConfig(_Section):
    """One estimation domain: a wireframe and/or logged zone codes."""

    name: str
    wireframe: InPath | None = None
    density: PositiveFloat | DensityModel | None = None
    zone_code: str | list[str] | None = None
    blocks: BlockRuleConfig | None = None

    @model_validator(mode="after")
    def _defined(self) -> DomainConfig:
        if self.wireframe is None and not self.zone_codes:
            msg = (
                f"domain {self.name!r} has neither a wireframe nor a zone_code: nothing says "
                "which samples or blocks belong to it"
            )
            raise ValueError(msg)
        if self.wireframe is not None and self.blocks is not None:
            msg = (
                f"domain {self.name!r} has both a wireframe and a block rule (blocks): the "
                "wireframe defines its blocks; remove one"
            )
            raise ValueError(msg)
        return self

    @field_validator("zone_code", mode="before")
    @classmethod
    def _codes_as_text(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)
        if isinstance(v, list):
            return [str(c) if isinstance(c, (int, float)) and not isinstance(c, bool) else c for c in v]
        return v

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", v):
            msg = f"domain names may use letters, digits, '_', '-' and '.', got {v!r}"
            raise ValueError(msg)
        return v

    @property
    def zone_codes(self) -> list[str]:
        """The logged zone codes that map to this domain."""
        if self.zone_code is None:
            return []
        return [self.zone_code] if isinstance(self.zone_code, str) else list(self.zone_code)


class CompositesConfig(_Section):
    """Down-hole compositing within each domain (SPEC section 6)."""

    length: PositiveFloat
    min_length: PositiveFloat | None = None
    residual: Literal["merge", "drop"] = "merge"

    @model_validator(mode="after")
    def _min_le_length(self) -> CompositesConfig:
        if self.min_length is not None and self.min_length > self.length:
            msg = f"min_length ({self.min_length}) must not exceed length ({self.length})"
            raise ValueError(msg)
        return self


_CAP_RULE = re.compile(r"^p(\d+(\.\d+)?)$")


def _check_cap(v: float | str) -> float | str:
    if isinstance(v, str):
        m = _CAP_RULE.match(v.strip().lower())
        if not m or not 0 < float(m.group(1)) <= 100:
            msg = f"a cap is a grade value or a percentile rule like 'p99.5', got {v!r}"
            raise ValueError(msg)
        return v.strip().lower()
    if v <= 0:
        msg = f"a cap must be positive, got {v!r}"
        raise ValueError(msg)
    return v


CapValue = Annotated[float | str, AfterValidator(_check_cap)]


# -- variography ----------------------------------------------------------------------------
class StructureConfig(_Section):
    """One nested structure of a variogram model."""

    type: Literal["spherical", "exponential", "gaussian"]
    sill: NonNegativeFloat
    ranges: PositiveTriple
    angles: Triple = (0.0, 0.0, 0.0)


class ModelConfig(_Section):
    """A variogram model: nugget plus nested structures (SPEC section 3)."""

    nugget: NonNegativeFloat = 0.0
    structures: list[StructureConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _some_variance(self) -> ModelConfig:
        if self.nugget + sum(st.sill for st in self.structures) <= 0:
            msg = (
                "the nugget and every sill are 0: the model has no variance, so kriging has "
                "nothing to weigh samples by; give the sills (they add up to the data's variance)"
            )
            raise ValueError(msg)
        return self

    def to_model(self):
        """The :class:`~estimator.variography.models.VariogramModel` this config describes."""
        from estimator.variography.models import VariogramModel

        return VariogramModel.from_dict(self.model_dump())


class ExperimentalConfig(_Section):
    """Experimental variogram settings (``VariographySettings``' experimental group)."""

    lag: PositiveFloat | None = None
    n_lags: PositiveInt = 12
    lag_tolerance: PositiveFloat | None = None
    tolerance: Annotated[float, Field(gt=0, le=90)] = 22.5
    dip_tolerance: Annotated[float, Field(gt=0, le=90)] | None = None
    bandwidth_h: PositiveFloat | None = None
    bandwidth_v: PositiveFloat | None = None
    measure: Literal["semivariogram", "correlogram", "pairwise_relative"] = "semivariogram"
    normal_score: bool = False
    downhole_lag: PositiveFloat | None = None
    downhole_n_lags: PositiveInt = 10
    #: Compute and plot the experimental variograms of an explicit model too (for comparison);
    #: a fitted model always has them. Default: only for fitted models.
    plot: bool = False


class FitConfig(_Section):
    """Model fitting settings (``VariographySettings``' fit group)."""

    n_structures: Annotated[int, Field(ge=1, le=3)] = 2
    types: list[Literal["spherical", "exponential", "gaussian"]] = Field(
        default_factory=lambda: ["spherical"]
    )
    nugget: NonNegativeFloat | None = None
    nugget_method: Literal["fit", "downhole"] = "fit"
    nugget_lags: PositiveInt = 3
    angles: Triple | None = None
    fan_step: Annotated[float, Field(gt=0, le=90)] = 15.0
    refine_orientation: bool = True
    include_downhole: bool = True
    min_pairs: PositiveInt = 30
    pair_sample: Annotated[int, Field(ge=0)] = 200
    nugget_floor: NonNegativeFloat = 1.0
    tabular: Annotated[float, Field(gt=0, le=1)] = 0.3
    tabular_check: Annotated[float, Field(gt=0, le=1)] = 0.6
    max_anisotropy: Annotated[float, Field(ge=1)] | None = 20.0


class VariographyEntry(_Section):
    """Variography of one grade in one domain: an explicit model, or fitting settings."""

    model: ModelConfig | None = None
    experimental: ExperimentalConfig = Field(default_factory=ExperimentalConfig)
    fit: FitConfig = Field(default_factory=FitConfig)


# -- block model and estimation -------------------------------------------------------------
class BlockModelConfig(_Section):
    """Regular grid; ``origin`` is the minimum corner; ``rotation`` degrees clockwise about z."""

    origin: Triple
    block_size: PositiveTriple
    shape: IntTriple
    rotation: float = 0.0
    subcells: IntTriple = (4, 4, 4)


class OctantConfig(_Section):
    """Octant search limits."""

    max_per_octant: PositiveInt
    min_octants: Annotated[int, Field(ge=0, le=8)] = 0


class PassConfig(_Section):
    """One search pass: an ellipsoid (or ``scale`` of the previous one) and sample limits."""

    ranges: PositiveTriple | None = None
    angles: Triple | None = None
    scale: PositiveFloat | None = None
    min_samples: PositiveInt = 1
    max_samples: PositiveInt = 24
    max_per_hole: Annotated[int, Field(ge=0)] = 0
    octants: OctantConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PassConfig:
        if self.min_samples > self.max_samples:
            msg = (
                f"min_samples ({self.min_samples}) must not exceed max_samples ({self.max_samples})"
            )
            raise ValueError(msg)
        if self.ranges is not None and self.scale is not None:
            msg = (
                "give either ranges (a new ellipsoid) or scale (the previous one scaled), not both"
            )
            raise ValueError(msg)
        return self


class EstimationConfig(_Section):
    """Estimator, block discretisation and search passes."""

    method: Literal["ok", "sk", "idw", "nn"] = "ok"
    discretisation: IntTriple = (3, 3, 3)
    passes: list[PassConfig] = Field(min_length=1)
    sk_mean: float | dict[str, float | dict[str, float]] | None = None
    idw_power: PositiveFloat = 2.0

    @model_validator(mode="after")
    def _first_pass_has_ranges(self) -> EstimationConfig:
        if self.passes and self.passes[0].ranges is None:
            msg = "passes[0] needs ranges: [major, semi-major, minor] (scale refers to a previous pass)"
            raise ValueError(msg)
        for i, p in enumerate(self.passes[1:], start=1):
            if p.ranges is None and p.scale is None:
                msg = f"passes[{i}] needs ranges or scale"
                raise ValueError(msg)
        if self.method == "sk" and self.sk_mean is None:
            msg = "method sk needs estimation.sk_mean (the declared mean)"
            raise ValueError(msg)
        return self

    def resolved_passes(self) -> list[dict]:
        """Passes with absolute ranges and angles (``scale`` applied to the previous pass)."""
        out: list[dict] = []
        ranges: tuple[float, ...] = ()
        angles: tuple[float, ...] = (0.0, 0.0, 0.0)
        for p in self.passes:
            if p.ranges is not None:
                ranges = tuple(p.ranges)
            else:
                ranges = tuple(r * p.scale for r in ranges)
            if p.angles is not None:
                angles = tuple(p.angles)
            out.append(
                {
                    "ranges": ranges,
                    "angles": angles,
                    "min_samples": p.min_samples,
                    "max_samples": p.max_samples,
                    "max_per_hole": p.max_per_hole,
                    "max_per_octant": p.octants.max_per_octant if p.octants else 0,
                    "min_octants": p.octants.min_octants if p.octants else 0,
                }
            )
        return out


class ClassRule(_Section):
    """One resource class; a block takes the first class whose every condition it meets."""

    name: str
    max_pass: PositiveInt | None = None
    min_slope: float | None = None
    min_samples: PositiveInt | None = None
    min_holes: PositiveInt | None = None
    max_dist: PositiveFloat | None = None
    max_search_dist: PositiveFloat | None = None


class SmoothingConfig(_Section):
    """``classification.smoothing``: groups of fewer than ``min_blocks`` connected blocks of
    one class take the class most common around them (README: Classification)."""

    min_blocks: Annotated[int, Field(ge=2)]


class ClassificationConfig(_Section):
    """Resource classification rules, applied to the first grade's estimate."""

    grade: str | None = None
    classes: list[ClassRule] = Field(min_length=1)
    smoothing: SmoothingConfig | None = None


class StatementConfig(_Section):
    """``report.statement``: the resource statement at one cut-off, rounded as declared."""

    cutoff: NonNegativeFloat
    tonnes_round: PositiveFloat = 10_000
    grade_figures: Annotated[int, Field(ge=1, le=6)] = 2
    metal_round: PositiveFloat = 1_000


class ReportConfig(_Section):
    """Grade-tonnage reporting."""

    cutoffs: list[NonNegativeFloat] = Field(default_factory=lambda: [0.0], min_length=1)
    grade: str | None = None
    statement: StatementConfig | None = None

    @model_validator(mode="after")
    def _statement_cutoff(self) -> ReportConfig:
        if self.statement is not None and not any(
            abs(c - self.statement.cutoff) < 1e-12 for c in self.cutoffs
        ):
            msg = (
                f"statement.cutoff {self.statement.cutoff:g} is not one of report.cutoffs "
                f"({', '.join(f'{c:g}' for c in self.cutoffs)}); add it there"
            )
            raise ValueError(msg)
        return self

    @field_validator("cutoffs")
    @classmethod
    def _sorted(cls, v: list[float]) -> list[float]:
        # reported in increasing order, each once
        return sorted(set(v))


class InterceptsConfig(_Section):
    """Significant-intercept rules (SPEC section 6)."""

    cutoff: PositiveFloat
    min_length: PositiveFloat
    max_dilution: NonNegativeFloat = 0.0
    including: PositiveFloat | None = None
    including_min_length: NonNegativeFloat = 0.0
    grade: str | None = None

    @model_validator(mode="after")
    def _including_above_cutoff(self) -> InterceptsConfig:
        if self.including is not None and self.including <= self.cutoff:
            msg = f"including ({self.including}) must be above cutoff ({self.cutoff})"
            raise ValueError(msg)
        return self


class SecurityConfig(_Section):
    """TLS files for a ``tls://`` scheduler (dask's own security settings)."""

    ca_file: InPath
    cert_file: InPath
    key_file: InPath | None = None


class ComputeConfig(_Section):
    """Where the block estimates are computed.

    ``scheduler``: ``threads`` (default), ``processes``, ``synchronous``, ``cluster`` (a dask
    LocalCluster of ``workers`` processes that estimator starts on 127.0.0.1 only) or the address
    of a running dask scheduler (``tcp://host:8786``, ``tls://host:8786`` with ``security``).
    """

    scheduler: str = "threads"
    security: SecurityConfig | None = None
    chunks: IntTriple = (64, 64, 32)
    workers: PositiveInt | None = None
    #: Seconds to wait for a dask.distributed scheduler before giving up (checked before the
    #: first stage).
    connect_timeout: PositiveFloat = 10.0

    @field_validator("scheduler")
    @classmethod
    def _scheduler_ok(cls, v: str) -> str:
        return _scheduler_value(v)


_ADDRESS = re.compile(r"^(tcp|tls|ucx)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):\d{1,5}/?$|^inproc://\S+$")


def _scheduler_value(v: str) -> str:
    if v in ("threads", "processes", "synchronous", "cluster") or _ADDRESS.match(v.strip()):
        return v.strip()
    msg = (
        "expected threads, processes, synchronous, cluster or a scheduler address with its port, "
        f"like tcp://host:8786, got {v!r}"
    )
    raise ValueError(msg)


def check_scheduler(value: str, key: str = "compute.scheduler") -> str:
    """A scheduler name or address (``--scheduler``), checked as the config checks it."""
    try:
        return _scheduler_value(str(value))
    except ValueError as err:
        raise ConfigError(f"{key}: {err}") from None


class ExportConfig(_Section):
    """One of ``output.exports``: a block-model file for another package, written by the run
    into ``exports/`` (as ``estimator export``)."""

    format: Literal["csv", "parquet", "omf", "vtk"]
    profile: Literal["datamine", "vulcan", "geovia", "surpac", "leapfrog"] | None = None

    @model_validator(mode="after")
    def _profile_for_tables(self) -> ExportConfig:
        if self.profile is not None and self.format not in ("csv", "parquet"):
            msg = f"profile {self.profile!r} applies to csv and parquet, not {self.format}"
            raise ValueError(msg)
        return self


class OutputConfig(_Section):
    """The run folder and the block model's file format.

    ``format``: ``netcdf`` (``blockmodel.nc``, one file, read whole), ``zarr``
    (``blockmodel.zarr``, written chunk by chunk as blocks are estimated, never whole in memory)
    or ``auto`` (NetCDF up to ``netcdf_max_blocks`` blocks x domains, Zarr above).
    """

    path: OutPath = Path("runs")
    format: Literal["netcdf", "zarr", "auto"] = "auto"
    netcdf_max_blocks: PositiveInt = 5_000_000
    exports: list[ExportConfig] = Field(default_factory=list)


class CappingAnalysisConfig(_Section):
    """``capping_analysis``: the candidate caps offered per domain and grade."""

    percentiles: list[Annotated[float, Field(gt=0, le=100)]] = Field(
        default_factory=lambda: [90.0, 95.0, 97.5, 99.0, 99.5, 99.9], min_length=1
    )
    cv_target: PositiveFloat | None = None
    plots: bool = True


class DeclusteringConfig(_Section):
    """``declustering``: GSLIB cell declustering of each domain's composites.

    Cell sizes (x, data units) from ``min_size`` to ``max_size`` in ``n_sizes`` steps (default
    1/50 and 1/2 of the domain's largest horizontal extent); y and z cells are ``anisotropy``
    times the x size; ``offsets`` origin offsets per size; the size giving the lowest mean is
    kept (GSLIB declus with minimisation).
    """

    grade: str | None = None
    min_size: PositiveFloat | None = None
    max_size: PositiveFloat | None = None
    n_sizes: Annotated[int, Field(ge=1, le=200)] = 24
    anisotropy: tuple[PositiveFloat, PositiveFloat] = (1.0, 1.0)
    offsets: Annotated[int, Field(ge=1, le=64)] = 8
    plots: bool = True


class ValidationConfig(_Section):
    """``validation``: the validation pack written by every run with an estimate."""

    enabled: bool = True
    cross_validation: Literal["hole", "one", "none"] = "hole"
    swath_width: PositiveFloat | None = None
    max_blocks: PositiveInt = 5_000_000


class RunConfig(_Section):
    """The whole run (SPEC section 3)."""

    name: str
    data: DataConfig
    grades: list[str] = Field(min_length=1)
    domains: list[DomainConfig] = Field(default_factory=list)
    composites: CompositesConfig | None = None
    capping: dict[str, dict[str, CapValue]] = Field(default_factory=dict)
    variography: dict[str, dict[str, VariographyEntry]] = Field(default_factory=dict)
    block_model: BlockModelConfig | None = None
    estimation: EstimationConfig | None = None
    classification: ClassificationConfig | None = None
    capping_analysis: CappingAnalysisConfig = Field(default_factory=CappingAnalysisConfig)
    declustering: DeclusteringConfig = Field(default_factory=DeclusteringConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    intercepts: InterceptsConfig | None = None
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    output: OutputConfig = Field(default_factory=lambda: OutputConfig())
    sensitivity: list[dict[str, Any]] = Field(default_factory=list)
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("sensitivity", mode="before")
    @classmethod
    def _variants(cls, v: Any) -> Any:
        if v is None:
            return []
        if not isinstance(v, list):
            msg = "a list of variants, each {name: ..., <section>: <overrides>}"
            raise ValueError(msg)
        seen = set()
        for i, item in enumerate(v):
            if not isinstance(item, dict) or "name" not in item:
                msg = f"[{i}]: a variant is a mapping with a name and the sections it changes"
                raise ValueError(msg)
            name = str(item["name"])
            if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name) or name in ("base", "sensitivity"):
                msg = (f"[{i}]: variant name {name!r}: letters, digits, '_', '-' and '.' only, "
                       "and not 'base'")  # fmt: skip
                raise ValueError(msg)
            if name in seen:
                msg = f"[{i}]: variant name {name!r} given twice"
                raise ValueError(msg)
            seen.add(name)
            fixed = sorted(set(item) & {"output", "compute", "sensitivity", "source"})
            if fixed:
                msg = (f"[{i}] ({name}): {', '.join(fixed)} cannot change in a variant (a study "
                       "runs every variant the same way, into the base run's folder)")  # fmt: skip
                raise ValueError(msg)
            if len(item) == 1:
                msg = f"[{i}] ({name}): the variant changes nothing; give the sections it changes"
                raise ValueError(msg)
        return v

    @field_validator("output", mode="before")
    @classmethod
    def _output_path(cls, v: Any) -> Any:
        # `output: runs/x` is short for `output: {path: runs/x}`
        return {"path": v} if isinstance(v, (str, Path)) else v

    @field_validator("grades")
    @classmethod
    def _lower_unique(cls, v: list[str]) -> list[str]:
        low = [g.strip().lower() for g in v]
        dup = sorted({g for g in low if low.count(g) > 1})
        if dup:
            msg = f"grades must be unique, {', '.join(dup)} given twice"
            raise ValueError(msg)
        return low

    @model_validator(mode="after")
    def _cross_checks(self) -> RunConfig:
        problems = []
        names = [d.name for d in self.domains]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            problems.append(f"domains: names must be unique, {', '.join(dup)} given twice")
        known = set(names) if names else {"all"}
        for section in ("capping", "variography"):
            for dom, per_grade in getattr(self, section).items():
                if dom not in known:
                    problems.append(
                        f"{section}.{dom}: no such domain (domains are {', '.join(sorted(known))})"
                    )
                for g in per_grade:
                    if g.lower() not in self.grades:
                        problems.append(
                            f"{section}.{dom}.{g}: no such grade (grades are {', '.join(self.grades)})"
                        )
        for key in ("report", "intercepts", "classification", "declustering"):
            sec = getattr(self, key)
            g = getattr(sec, "grade", None) if sec is not None else None
            if g is not None and g.lower() not in self.grades:
                problems.append(
                    f"{key}.grade: {g!r} is not one of grades ({', '.join(self.grades)})"
                )
        for i, dom in enumerate(self.domains):
            if isinstance(dom.density, DensityModel) and dom.density.grade.lower() not in self.grades:
                problems.append(
                    f"domains[{i}].density.grade: {dom.density.grade!r} is not one of grades "
                    f"({', '.join(self.grades)}); a density estimated like a grade must be listed"
                )
        if isinstance(self.data.max_grade, dict):
            for g in self.data.max_grade:
                if g.lower() not in self.grades:
                    problems.append(
                        f"data.max_grade.{g}: no such grade (grades are {', '.join(self.grades)})"
                    )
        reserved = sorted({"all", "total"} & set(names))
        if reserved:
            problems.append(
                f"domains: {', '.join(reserved)} is a reserved name (the whole grid without "
                "domains; the sum of every domain in the reports): rename the domain"
            )
        if self.estimation is not None and self.block_model is None:
            problems.append("estimation is configured but block_model is missing")
        if self.block_model is not None:
            for i, d in enumerate(self.domains):
                if d.wireframe is None and d.blocks is None:
                    problems.append(
                        f"domains[{i}] ({d.name}): no wireframe, so nothing says which blocks are "
                        f"{d.name}; give domains[{i}].wireframe (a closed surface: OBJ, STL or "
                        f"PLY) or a block rule, domains[{i}].blocks: {{rule: nearest_sample, "
                        "max_distance: <data units>}} (README: Domains without a wireframe)"
                    )
            nx, ny, nz = self.block_model.shape
            cx, cy, cz = self.compute.chunks
            n_chunks = -(-nx // cx) * -(-ny // cy) * -(-nz // cz)
            if n_chunks > MAX_CHUNKS:
                problems.append(
                    f"block_model.shape: {nx} x {ny} x {nz} blocks in chunks of {cx} x {cy} x "
                    f"{cz} (compute.chunks) make {n_chunks:,} chunks, more than the "
                    f"{MAX_CHUNKS:,} a run plans; use larger blocks, a smaller extent or larger "
                    "compute.chunks"
                )
            need = self.memory_needed()
            have = physical_memory()
            if have and need > 0.8 * have:
                bm = self.block_model
                problems.append(
                    f"block_model.shape: {bm.shape[0]} x {bm.shape[1]} x {bm.shape[2]} blocks "
                    f"x {len(self.domain_names)} domain(s) x {len(self.grades)} grade(s) need about "
                    f"{_gib(need)} of memory, more than this machine's {_gib(have)}; use larger "
                    "blocks (block_model.block_size) or a smaller extent (block_model.shape)"
                )
        if self.data.samples is not None and self.composites is not None:
            problems.append(
                "composites: positioned samples (data.samples) are not composited; remove it"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- convenience -------------------------------------------------------------------------
    def block_model_format(self) -> str:
        """``netcdf`` or ``zarr``: ``output.format``, with ``auto`` decided by the model's size."""
        if self.output.format != "auto":
            return self.output.format
        if self.block_model is None:
            return "netcdf"
        nx, ny, nz = self.block_model.shape
        blocks = nx * ny * nz * len(self.domain_names)
        return "netcdf" if blocks <= self.output.netcdf_max_blocks else "zarr"

    def memory_needed(self) -> int:
        """Bytes a NetCDF block model needs in memory (about three copies of every variable);
        a Zarr model is written chunk by chunk and needs none of it."""
        if self.block_model is None or self.block_model_format() == "zarr":
            return 0
        nx, ny, nz = self.block_model.shape
        per_block = 8 + len(self.grades) * (5 * 8 + 3 * 4 + 1) + 8  # fraction, grades, class
        return 3 * nx * ny * nz * len(self.domain_names) * per_block

    def load_warnings(self) -> list[str]:
        """What is valid but deserves the geologist's attention, one message each."""
        out = []
        for dom, per_grade in self.variography.items():
            for grade, entry in per_grade.items():
                key = f"variography.{dom}.{grade}"
                m = entry.model
                if m is not None and m.nugget == 0 and any(
                    st.type == "gaussian" for st in m.structures
                ):
                    out.append(
                        f"{key}.model: a gaussian structure with no nugget makes kriging systems "
                        "ill-conditioned (the model is very smooth near the origin), so estimates "
                        "can swing far outside the composites' range; add a nugget (even 1 % of "
                        "the sill) or use a spherical or exponential structure"
                    )
                if m is None and "gaussian" in entry.fit.types and entry.fit.nugget == 0:
                    out.append(
                        f"{key}.fit: gaussian structures fitted with the nugget fixed at 0 make "
                        "kriging systems ill-conditioned; let the nugget be fitted"
                    )
        return out

    @property
    def domain_names(self) -> list[str]:
        """Domain names in config order (``["all"]`` when none are configured)."""
        return [d.name for d in self.domains] or ["all"]

    def domain(self, name: str) -> DomainConfig | None:
        """The domain config called ``name`` (None for the implicit ``all``)."""
        return next((d for d in self.domains if d.name == name), None)


def physical_memory() -> int:
    """This machine's physical memory in bytes (0 when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 0


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


# -- loading --------------------------------------------------------------------------------
_TYPE_TAGS = {"float", "int", "str", "bool", "list", "dict", "tuple", "none", "path"}


def _fmt_loc(loc: tuple) -> str:
    """``("estimation", "passes", 0, "ranges")`` -> ``estimation.passes[0].ranges``.

    Pydantic inserts union-branch tags (``float``, ``function-after[...]``) into locations;
    they are not keys, so they are left out.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = str(part)
        if (
            text.lower() in _TYPE_TAGS
            or any(c in text for c in "[]()")
            or text.startswith(("function-", "constrained-"))
        ):
            continue
        out += ("." if out else "") + text
    return out or "(top level)"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple = 2, 4, 6, 6
_REPR.maxstring, _REPR.maxother = 80, 80


def _short(value: Any) -> str:
    """``repr`` cut to a few lines (a config value can be huge, e.g. a YAML alias bomb)."""
    try:
        return _REPR.repr(value)
    except RecursionError:
        return "<nested too deeply>"


#: Error types of the union branches a value plainly does not take (a number given where a
#: mapping is one of the options): left out when another branch explains the problem.
_BRANCH_MISMATCH = {"dict_type", "list_type", "tuple_type", "model_type", "string_type"}


def _format_errors(err: ValidationError) -> list[str]:
    lines = []
    seen = set()
    errors = err.errors()
    by_loc: dict[str, list[str]] = {}
    for e in errors:
        by_loc.setdefault(_fmt_loc(e["loc"]), []).append(e["type"])
    for e in errors:
        types = by_loc[_fmt_loc(e["loc"])]
        if e["type"] in _BRANCH_MISMATCH and any(t not in _BRANCH_MISMATCH for t in types):
            continue
        loc = _fmt_loc(e["loc"])
        msg = e["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            msg = msg.removeprefix(prefix)
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling against SPEC section 3)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        value = e.get("input")
        shown = (
            ""
            if e["type"] in ("missing", "extra_forbidden") and value is None
            else f" (got {_short(value)})"
        )
        if isinstance(value, dict) or f"got {value!r}" in msg:
            shown = ""
        if len(msg) > 600:
            msg = msg[:600] + " ..."
        line = f"{loc}: {msg}{shown}"
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


def parse_config(
    raw: dict, base: Path | None = None, *, source: str = "config", check_files=True
) -> RunConfig:
    """Validate a config mapping; relative paths resolve against ``base``.

    Raises
    ------
    ConfigError
        One line per problem: ``key.path: what is wrong (got value)``.
    """
    if not isinstance(raw, dict):
        msg = f"{source}: expected a YAML mapping of sections (name, data, grades, ...), got {type(raw).__name__}"
        raise ConfigError(msg)
    raw = dict(raw)
    if "name" in raw:
        out = raw.get("output")
        if out is None:
            raw["output"] = f"runs/{raw['name']}"
        elif isinstance(out, dict) and "path" not in out:
            raw["output"] = {**out, "path": f"runs/{raw['name']}"}
    try:
        cfg = RunConfig.model_validate(raw, context={"base": base, "check_files": check_files})
    except ValidationError as err:
        lines = _format_errors(err)
        msg = f"{source}: {len(lines)} problem(s) in the configuration:\n  " + "\n  ".join(lines)
        raise ConfigError(msg) from None
    if cfg.sensitivity:
        variant_configs(cfg, base, source=source, check_files=check_files)  # checked at load
    return cfg


#: How a sensitivity variant runs unless it says otherwise: without the validation pack and
#: the capping and declustering plots (their tables are kept); its block model, grade-tonnage
#: table, statement and page as any run's.
VARIANT_DEFAULTS = {
    "validation": {"enabled": False},
    "capping_analysis": {"plots": False},
    "declustering": {"plots": False},
}


#: Sections whose change makes a variant estimate its blocks again (or re-weight them).
ESTIMATE_SECTIONS = {"data", "grades", "domains", "composites", "capping", "variography",
                     "block_model", "estimation", "classification"}  # fmt: skip


def _merge(base: Any, over: Any) -> Any:
    """``over`` laid on ``base``: mappings merged key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return over


def variant_configs(
    cfg: RunConfig, base: Path | None = None, *, source: str = "config", check_files=True
) -> list[tuple[str, RunConfig]]:
    """The configs of the ``sensitivity`` variants: each the base config with the variant's
    sections laid over it (mappings merged key by key, lists and values replaced), run into
    ``<output.path>/sensitivity/<name>``.

    Raises
    ------
    ConfigError
        A variant whose merged config is not valid, named ``sensitivity[i] (name)``.
    """
    if base is None and cfg.source is not None:
        base = Path(cfg.source).parent
    doc = cfg.model_dump(mode="json", exclude={"sensitivity", "source"})
    out = []
    for i, variant in enumerate(cfg.sensitivity):
        name = str(variant["name"])
        over = {k: v for k, v in variant.items() if k != "name"}
        defaults = dict(VARIANT_DEFAULTS)
        if set(over) & ESTIMATE_SECTIONS:  # it estimates again: a Zarr store, no conversion
            defaults["output"] = {"format": "zarr"}
        merged = _merge(_merge(doc, defaults), over)
        merged["output"] = {**merged["output"], "exports": [],
                            "path": str(Path(cfg.output.path) / "sensitivity" / name)}  # fmt: skip
        vcfg = parse_config(merged, base, source=f"{source}: sensitivity[{i}] ({name})",
                            check_files=check_files)  # fmt: skip
        out.append((name, vcfg.model_copy(update={"source": cfg.source})))
    return out


#: A grid cut into more chunks than this (``compute.chunks``) is refused at load.
MAX_CHUNKS = 2_000_000
#: A config expanding (through YAML aliases) to more values than this is refused.
MAX_CONFIG_VALUES = 100_000

_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _ConfigLoader(yaml.SafeLoader):
    """YAML ``SafeLoader`` for configs: dates stay text, duplicate keys are refused and a
    ``tranche`` name is kept exactly as written (``2011-06-28``, ``1.50``)."""


_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _ConfigLoader, node: yaml.MappingNode) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} is given twice (lines {seen[key]} and {line}): YAML would keep only "
                "the last one; remove one",
                key_node.start_mark,
            )
        seen[key] = line
    loader.flatten_mapping(node)
    out = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if (
            key == "tranche"
            and isinstance(value_node, yaml.ScalarNode)
            and value_node.tag != "tag:yaml.org,2002:null"
        ):
            out[key] = str(value_node.value)
        else:
            out[key] = loader.construct_object(value_node, deep=True)
    return out


_ConfigLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _count_values(obj: Any, memo: dict[int, int]) -> int:
    """Values in ``obj`` with every YAML alias expanded (shared objects counted once each use)."""
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, dict):
        n = 1 + sum(_count_values(k, memo) + _count_values(v, memo) for k, v in obj.items())
    elif isinstance(obj, list):
        n = 1 + sum(_count_values(v, memo) for v in obj)
    else:
        n = 1
    memo[key] = n
    return n


def read_yaml(path: Path) -> Any:
    """Parse a config file (the only place YAML is parsed); every failure is a ConfigError."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        msg = (
            f"{path.name}: line {line} is not UTF-8 text (byte 0x{path.read_bytes()[err.start]:02x} "
            f"at byte {err.start}); save the config as UTF-8"
        )
        raise ConfigError(msg) from None
    except OSError as err:
        msg = f"{path}: cannot read the config ({err.strerror})"
        raise ConfigError(msg) from None
    try:
        raw = yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader subclass
        size = _count_values(raw, {})
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        msg = f"{path.name}:{where} is not valid YAML: {getattr(err, 'problem', err)}"
        raise ConfigError(msg) from None
    except RecursionError:
        msg = f"{path.name}: the YAML is nested too deeply to be a configuration"
        raise ConfigError(msg) from None
    if size > MAX_CONFIG_VALUES:
        msg = (
            f"{path.name}: the YAML expands to {size:,} values through its aliases (&name / *name), "
            f"more than {MAX_CONFIG_VALUES:,}: not a configuration (an alias bomb?)"
        )
        raise ConfigError(msg)
    return raw


def load_config(path: str | Path, *, check_files: bool = True) -> RunConfig:
    """Read and validate the YAML config at ``path``; log its warnings."""
    path = Path(path)
    if path.is_dir():
        msg = f"{path} is a folder, not a config file"
        raise ConfigError(msg)
    if not path.is_file():
        msg = f"config file not found: {path}"
        raise ConfigError(msg)
    raw = read_yaml(path)
    cfg = parse_config(raw, base=path.resolve().parent, source=path.name, check_files=check_files)
    for text in cfg.load_warnings():
        log.warning("%s: %s", path.name, text)
    return cfg.model_copy(update={"source": path.resolve()})
