"""estimator.drillholes."""
