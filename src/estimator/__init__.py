"""estimator: geostatistical resource estimation from drillholes to block model.

The public API, for scripts and notebooks. Everything is imported on first use, so
``import estimator`` stays fast::

    import estimator
    cfg = estimator.load_config("configs/demo/demo.yaml")
    result = estimator.run(cfg, in_memory=True)        # or run(cfg) into its run folder
    result.grade_tonnage                                # pandas DataFrame
    result.blockmodel                                   # xarray Dataset

The building blocks take plain arrays and DataFrames: :func:`desurvey`, :func:`composite`,
:func:`experimental_variogram`, :func:`fit_variogram`, :func:`estimate_blocks`,
:func:`grade_tonnage` and friends.

>>> import estimator
>>> sorted(estimator.__all__)[:4]
['BlockGrid', 'ConfigError', 'DataError', 'EstimationWarning']
"""

from estimator.errors import ConfigError, DataError, EstimationWarning, EstimatorError

__version__ = "0.1.0"

#: Public name -> (module, attribute), imported on first access (PEP 562).
_LAZY = {
    # configs and runs
    "RunConfig": ("estimator.config", "RunConfig"),
    "load_config": ("estimator.config", "load_config"),
    "parse_config": ("estimator.config", "parse_config"),
    "run": ("estimator.api", "run"),
    "Run": ("estimator.api", "Run"),
    # drillholes
    "desurvey": ("estimator.drillholes.desurvey", "desurvey"),
    "composite": ("estimator.compositing", "composite"),
    "find_intercepts": ("estimator.intercepts", "find_intercepts"),
    # variography
    "VariogramModel": ("estimator.variography.models", "VariogramModel"),
    "Structure": ("estimator.variography.models", "Structure"),
    "experimental_variogram": ("estimator.variography.experimental", "experimental_variogram"),
    "downhole_variogram": ("estimator.variography.experimental", "downhole_variogram"),
    "fit_variogram": ("estimator.variography.fit", "variography"),
    "cross_validate": ("estimator.validation", "cross_validate"),
    # estimation
    "SearchPass": ("estimator.kriging.estimate", "SearchPass"),
    "estimate_blocks": ("estimator.kriging.estimate", "estimate_blocks"),
    "BlockGrid": ("estimator.blockmodel.grid", "BlockGrid"),
    "make_block_model": ("estimator.blockmodel.grid", "make_block_model"),
    "block_fractions": ("estimator.blockmodel.clip", "block_fractions"),
    "grade_tonnage": ("estimator.reporting", "grade_tonnage"),
}

__all__ = [
    "BlockGrid",
    "ConfigError",
    "DataError",
    "EstimationWarning",
    "EstimatorError",
    "Run",
    "RunConfig",
    "SearchPass",
    "Structure",
    "VariogramModel",
    "__version__",
    "block_fractions",
    "composite",
    "cross_validate",
    "desurvey",
    "downhole_variogram",
    "estimate_blocks",
    "experimental_variogram",
    "find_intercepts",
    "fit_variogram",
    "grade_tonnage",
    "load_config",
    "make_block_model",
    "parse_config",
    "run",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    msg = f"module 'estimator' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__():
    return __all__
