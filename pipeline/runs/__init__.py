"""Tracked model runs read back from MLflow: the leaderboard (`pipeline runs`) and the
comparison of two runs (`pipeline runs compare`). Reads the store with MlflowClient only:
no torch, no Lightning."""
