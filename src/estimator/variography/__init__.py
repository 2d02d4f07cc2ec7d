"""estimator.variography."""
