"""A team's stack on one machine: PostgreSQL, an MLflow server on it with basic auth and
proxied artifacts, and a WebDAV DVC remote (`make stack-up`, docs/team.md)."""
