"""`pipeline serve`: the HTTP API (pipeline/api). Registration imports nothing heavy."""

from __future__ import annotations

import argparse

from pipeline.commands.options import add_config_options, params_path, service_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `serve` to the `pipeline` CLI."""
    p = subparsers.add_parser(
        "serve", help="serve search over HTTP (API keys, roles, feedback)",
        description="Run the HTTP API (FastAPI + uvicorn). Host, port and workers come from "
        "conf/serve; the OpenAPI document is at /openapi.json and /docs.",
    )  # fmt: skip
    add_config_options(p)
    p.add_argument("--host", help="bind address (default serve.host, loopback)")
    p.add_argument("--port", type=int, help="port (default serve.port)")
    p.add_argument("--workers", type=int, help="worker processes (default serve.workers)")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from pipeline.api.run import serve

    serve(
        service_config(args), args.root, params_path(args), args.overrides,
        args.host, args.port, args.workers,
    )  # fmt: skip
    return 0
