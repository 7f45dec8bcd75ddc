"""`pipeline summary`: what the last pipeline run produced and where to look next."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.cli import emit

REPORTS = {
    "dedup": "reports/dedup.json",
    "train": "reports/train.json",
    "evaluate": "reports/metrics.json",
    "index": "reports/index.json",
}

NEXT_STEPS = (
    "source .venv/bin/activate                           # puts pipeline, dvc and mlflow on PATH",
    "mlflow ui --backend-store-uri sqlite:///mlflow.db   # compare runs at http://127.0.0.1:5000",
    'pipeline search "how do I reset my password" --mode hybrid -k 5',
    'pipeline search "refund" --filter label=support --filter "quality>=4" --json',
    "pipeline records stats",
    "dvc exp run -S model=finetune && dvc exp show        # another experiment, side by side",
    "pipeline keys create --role reader && pipeline serve  # the same search over HTTP",
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("summary", help="summarise the last run and suggest next steps")
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(func=run)


def collect(root: Path) -> dict[str, Any]:
    """Read each stage's report that exists."""
    found: dict[str, Any] = {}
    for stage, rel in REPORTS.items():
        path = root / rel
        if path.exists():
            found[stage] = json.loads(path.read_text(encoding="utf-8"))
    return found


def _line(stage: str, report: dict[str, Any]) -> str:
    pick = {
        "dedup": ("input_records", "kept", "exact_duplicates", "near_duplicates", "rejected"),
        "train": ("model", "best_val.val_macro_f1", "epochs", "train_samples_per_s"),
        "evaluate": ("accuracy", "macro_f1", "baseline_macro_f1", "ece"),
        "index": ("records", "factory", "recall_at_10"),
    }[stage]
    parts = []
    for key in pick:
        value: Any = report
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, dict):
            value = value.get("total", value)
        if isinstance(value, float):
            value = f"{value:.3f}"
        if value is not None:
            parts.append(f"{key}={value}")
    return f"  {stage:<9} " + "  ".join(parts)


def run(args: argparse.Namespace) -> int:
    root = Path(args.root)
    reports = collect(root)
    text = ["Pipeline outputs:"]
    text += [_line(stage, report) for stage, report in reports.items()]
    if not reports:
        text.append("  (no reports yet: run `dvc repro`)")
    text += ["", "Next:"] + [f"  {step}" for step in NEXT_STEPS]
    emit({"reports": reports, "next": list(NEXT_STEPS)}, args.json, "\n".join(text))
    return 0
