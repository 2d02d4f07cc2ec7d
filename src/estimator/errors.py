"""Exceptions and warnings raised by estimator."""

from __future__ import annotations


class EstimatorError(Exception):
    """Base class of every error estimator raises on purpose."""


class ConfigError(EstimatorError, ValueError):
    """The configuration is invalid (unknown key, wrong type, inconsistent values)."""


class DataError(EstimatorError, ValueError):
    """Input data cannot be used (missing file, no required column, nothing left)."""


class EstimationWarning(UserWarning):
    """Blocks left unestimated or systems that could not be solved (counted, not per block)."""
