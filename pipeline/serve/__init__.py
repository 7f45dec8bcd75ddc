"""`pipeline serve`: the HTTP search API (FastAPI), with API keys, roles and scopes."""
