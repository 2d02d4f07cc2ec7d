"""estimator.geometry."""
