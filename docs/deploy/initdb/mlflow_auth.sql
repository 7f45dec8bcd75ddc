-- MLflow's basic-auth users live in their own database beside the runs (as in `make stack-up`).
CREATE DATABASE mlflow_auth;
