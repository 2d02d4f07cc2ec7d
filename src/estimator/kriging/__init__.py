"""estimator.kriging."""
