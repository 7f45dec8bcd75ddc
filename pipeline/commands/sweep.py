"""`pipeline sweep`: an Optuna search over the train config; each trial is an MLflow run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.commands.options import add_config_options, params_path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `sweep` subcommand (imports nothing heavy: no Optuna, no torch)."""
    parser = sub.add_parser(
        "sweep",
        help="Optuna search over the train config (conf/sweep/), each trial an MLflow run",
        description="Train one model per trial on the train split, score it on the val split "
        "(sweep.metric, e.g. val_macro_f1) and let Optuna choose the next trial from the "
        "search space sweep.params (conf/sweep/default.yaml). Each trial is an MLflow run, a "
        "child of the sweep's run; models/ and reports/ are left to `dvc repro`. "
        "Example: pipeline sweep -S sweep.n_trials=10 -S trainer.max_epochs=5",
    )
    add_config_options(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.sweep.run import run_sweep  # imports Optuna, MLflow and (per trial) torch

    def progress(trial: dict[str, Any]) -> None:
        values = " ".join(f"{k}={_short(v)}" for k, v in trial["params"].items())
        print(f"trial {trial['number']}: {trial['value']:.4f} in {trial['seconds']:.1f} s  "
              f"{values}", file=sys.stderr, flush=True)  # fmt: skip

    result = run_sweep(params_path(args), args.overrides, Path(args.root), progress)
    report = result.as_dict()
    emit(report, args.json, _table(report))
    return 0


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(report: dict[str, Any]) -> str:
    """The trials, best first, under a line naming the best and the sweep's MLflow run."""
    metric, best = report["metric"], report["best"]
    keys = list(best["params"])
    reverse = report["direction"] == "maximize"
    rows = sorted(report["trials"], key=lambda t: t["value"], reverse=reverse)
    header = ["trial", metric, *keys, "seconds", "mlflow run"]
    body = [
        [str(t["number"]), f"{t['value']:.4f}", *(_short(t["params"][k]) for k in keys),
         f"{t['seconds']:.1f}", t["run_id"]]
        for t in rows
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *body]]  # fmt: skip
    summary = (
        f"{report['sweep_id']}: best {metric} {best['value']:.4f} (trial {best['number']}) "
        f"of {len(rows)} in {report['seconds']:.0f} s; MLflow run {report['mlflow_run_id']}"
    )
    return "\n".join([summary, "", *lines])
