"""`pipeline sweep`: an Optuna search over the train config whose trials are MLflow runs."""
