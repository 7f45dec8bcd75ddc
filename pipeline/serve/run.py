"""Start uvicorn: one process serves the app object; several workers each build it from the
same params file and overrides (passed through the environment, as uvicorn's workers import
the app by name)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from fastapi import FastAPI

from pipeline.errors import UserInputError
from pipeline.serve.logs import log_config
from pipeline.serve.state import ServiceConfig

_PARAMS_ENV = "PIPELINE_SERVE_PARAMS"
_OVERRIDES_ENV = "PIPELINE_SERVE_OVERRIDES"


def app_factory() -> FastAPI:
    """Build the app in a uvicorn worker from the parent's params file and overrides."""
    from pipeline.config import load_params
    from pipeline.serve.app import create_app

    params = os.environ.get(_PARAMS_ENV, "params.yaml")
    overrides = json.loads(os.environ.get(_OVERRIDES_ENV, "[]"))
    return create_app(ServiceConfig.from_cfg(load_params(params, overrides)))


def serve(
    config: ServiceConfig,
    params: str,
    overrides: Sequence[str],
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> None:
    """Run the server until interrupted."""
    import uvicorn

    from pipeline.serve.app import create_app

    host = host or config.serve.host
    port = config.serve.port if port is None else port
    workers = workers or config.serve.workers
    if not 0 <= port <= 65535:
        raise UserInputError(f"serve.port {port}: expected 0-65535")
    if workers < 1:
        raise UserInputError(f"serve.workers {workers}: expected at least 1")
    log_options = {"log_level": "info", "log_config": log_config()}  # URLs redacted in access log
    if workers == 1:
        uvicorn.run(create_app(config), host=host, port=port, **log_options)
        return
    os.environ[_PARAMS_ENV] = str(params)
    os.environ[_OVERRIDES_ENV] = json.dumps(list(overrides))
    uvicorn.run(
        "pipeline.serve.run:app_factory", factory=True, host=host, port=port, workers=workers,
        **log_options,
    )  # fmt: skip
