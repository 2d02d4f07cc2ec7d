"""estimator.blockmodel."""
