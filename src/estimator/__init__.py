"""estimator: geostatistical resource estimation from drillholes to block model."""

from estimator.errors import ConfigError, DataError, EstimationWarning, EstimatorError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "EstimationWarning", "EstimatorError", "__version__"]
