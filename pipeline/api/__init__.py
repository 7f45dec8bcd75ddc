"""`pipeline serve`: the HTTP API (FastAPI), with API keys, roles and row scopes.

app.py builds the app; routes/ holds one router per area; deps.py the auth dependencies;
models.py the request and response bodies; state.py what a server process holds; guard.py,
errors.py and logs.py the header checks, error bodies and access log; run.py starts uvicorn.
The logic lives in pipeline/service/ and the store, which the CLI calls too.
"""
