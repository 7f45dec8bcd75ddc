"""Start uvicorn: one process serves the app object; several workers each build it from the
same params file and overrides (passed through the environment, as uvicorn's workers import
the app by name)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from fastapi import FastAPI

from pipeline.api.logs import log_config
from pipeline.api.state import ServiceConfig
from pipeline.errors import UserInputError

_ARGS_ENV = "PIPELINE_SERVE_CONFIG"  # JSON [root, params file, overrides] for the workers


def service_config(
    root: str | Path, params: str | Path, overrides: Sequence[str] = ()
) -> ServiceConfig:
    """The service's config from a params file and overrides, its paths under `root`."""
    from pipeline.config import load_params

    config = ServiceConfig.from_cfg(load_params(params, overrides))
    return replace(config, paths=config.paths.under(Path(root)), root=Path(root))


def app_factory() -> FastAPI:
    """Build the app in a uvicorn worker from the parent's root, params file and overrides."""
    from pipeline.api.app import create_app

    root, params, overrides = json.loads(os.environ.get(_ARGS_ENV, '[".", "params.yaml", []]'))
    return create_app(service_config(root, params, overrides))


def serve(
    config: ServiceConfig,
    root: str | Path,
    params: str | Path,
    overrides: Sequence[str],
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> None:
    """Run the server until interrupted."""
    import uvicorn

    from pipeline.api.app import create_app

    host = host or config.serve.host
    port = config.serve.port if port is None else port
    workers = workers or config.serve.workers
    if not 0 <= port <= 65535:
        raise UserInputError(f"serve.port {port}: expected 0-65535")
    if workers < 1:
        raise UserInputError(f"serve.workers {workers}: expected at least 1")
    tls = config.serve.tls.under(Path(root))
    tls.check()  # a missing or mismatched file: exit 2 naming it, before uvicorn starts
    log_options = {"log_level": "info", "log_config": log_config()}  # URLs redacted in access log
    log_options.update(tls.uvicorn_options())
    if workers == 1:
        uvicorn.run(create_app(config), host=host, port=port, **log_options)
        return
    os.environ[_ARGS_ENV] = json.dumps([str(root), str(params), list(overrides)])
    uvicorn.run(
        "pipeline.api.run:app_factory", factory=True, host=host, port=port, workers=workers,
        **log_options,
    )  # fmt: skip
