"""Label issues (cleanlab over cross-validated probabilities) and their review loop."""
