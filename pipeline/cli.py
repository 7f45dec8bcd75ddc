"""The `pipeline` command. Start-up stays fast: subcommands import their code when run."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from pipeline.errors import PipelineError

# Each module defines `register(subparsers)`; registration must import nothing heavy.
COMMAND_MODULES: tuple[str, ...] = (
    "pipeline.commands.dedup",
    "pipeline.commands.train",
    "pipeline.commands.evaluate",
    "pipeline.commands.index",
    "pipeline.commands.serve",
    "pipeline.commands.keys",
    "pipeline.commands.feedback",
    "pipeline.commands.stats",
    "pipeline.commands.erase",
    "pipeline.commands.summary",
    "pipeline.commands.sweep",
    "pipeline.commands.runs",
    "pipeline.commands.anomaly",
    "pipeline.commands.labels",
    "pipeline.commands.predict",
    "pipeline.commands.monitor",
    "pipeline.commands.retrieval",
    "pipeline.commands.rag",
    "pipeline.commands.db",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Curate, train on and search prompt/response records.",
        epilog="Exit codes: 0 ok, 1 failure, 2 bad input or config, 3 not found, "
        "4 busy (another process holds the store), 5 not authorised.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    """Print `data` as JSON for scripts, or `text` for people."""
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    elif text is not None:
        print(text)


def main(argv: Sequence[str] | None = None) -> int:
    # MLflow draws a tqdm bar per artifact copy (registering a model): noise in stage logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # `pipeline train model=finetune` (Hydra's and the old train/evaluate syntax).
        sets = [item for item in extra if "=" in item and not item.startswith("-")]
        hint = f" (config overrides take -S: {' '.join(f'-S {s}' for s in sets)})" if sets else ""
        parser.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        hint = untrusted_certificate(exc)
        if hint is None:
            raise
        print(f"error: {hint}", file=sys.stderr)
        return 2


def untrusted_certificate(exc: BaseException) -> str | None:
    """A one-line error for a TLS server whose certificate did not verify, wherever in the
    chain it was raised (MLflow's client wraps it in its own exception); None otherwise."""
    seen: BaseException | None = exc
    for _ in range(20):  # a chain, bounded
        if seen is None:
            break
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            found = re.search(r"https://[^/\s'\"]+", str(seen))
            where = found.group(0) if found else "a server"
            return (
                f"{where}: its TLS certificate did not verify against the trusted CAs "
                "(CERTIFICATE_VERIFY_FAILED); for the team's MLflow, export "
                "MLFLOW_TRACKING_SERVER_CERT_PATH=<its CA> "
                '(`eval "$(python -m pipeline.stack env)"`, docs/team.md#tls)'
            )
        seen = seen.__cause__ or seen.__context__
    return None


if __name__ == "__main__":
    raise SystemExit(main())
