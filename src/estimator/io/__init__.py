"""estimator.io."""
