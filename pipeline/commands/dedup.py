"""`pipeline dedup` (the stage) and `pipeline records stats|show`; registration stays light."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.cli import emit
from pipeline.commands.options import add_config_options, config_path, load_config

DEFAULT_STORE = "data/dedup/store.duckdb"


def register(sub: argparse._SubParsersAction) -> None:
    dedup = sub.add_parser(
        "dedup",
        help="validate, redact and deduplicate data/raw into the store (the first stage)",
        description="Read the dataset of params.yaml (`data`), validate, redact PII, drop "
        "exact and near duplicates, and publish data/dedup/ and reports/dedup.json.",
    )
    add_config_options(dedup)
    dedup.add_argument("--json", action="store_true", help="print the stage report as JSON")
    dedup.set_defaults(func=run_dedup)

    records = sub.add_parser("records", help="inspect the dedup store")
    inner = records.add_subparsers(dest="records_command", metavar="ACTION")
    stats = inner.add_parser("stats", help="counts: kept, duplicates, rejected by reason, PII")
    show = inner.add_parser(
        "show",
        help="one record with its duplicates, session turns, and why it was filtered or rejected",
    )
    show.add_argument("id", help="record id (or rid), e.g. r00042 or chat.jsonl:17")
    for parser in (stats, show):
        add_config_options(parser)
        parser.add_argument("--store", help=f"store file (default: paths.store, {DEFAULT_STORE})")
        parser.add_argument("--json", action="store_true", help="print as JSON")
    stats.set_defaults(func=run_stats)
    show.set_defaults(func=run_show)
    from pipeline.commands.anomaly import register_records

    register_records(inner)  # `records anomalies`
    from pipeline.commands.predict import register_records as register_predictions

    register_predictions(inner)  # `records disagreements`
    records.set_defaults(func=lambda args: records.print_help() or 2)


def run_dedup(args: argparse.Namespace) -> int:
    from pipeline.stages import summaries
    from pipeline.stages.dedup import run

    report = run(load_config(args), Path(args.root))
    emit(report, args.json, summaries.dedup(report))
    return 0 if report["accounting"]["holds"] else 1


def _store(args: argparse.Namespace) -> Path:
    return Path(args.store) if args.store else config_path(args, "paths.store", DEFAULT_STORE)


def run_stats(args: argparse.Namespace) -> int:
    from pipeline.store.records import stats

    data = stats(_store(args))
    lines = [f"{name:<15} {count:>9}" for name, count in data["tables"].items()]
    for key in ("rejected_by_reason", "duplicates_by_method", "filtered_by_filter",
                "kept_by_origin", "pii_by_type"):  # fmt: skip
        if data[key]:
            lines.append(f"{key}: " + ", ".join(f"{k}={v}" for k, v in data[key].items()))
    lines.append(f"sessions: {data['sessions']}; data_hash: {data['meta'].get('data_hash')}")
    emit(data, args.json, "\n".join(lines))
    return 0


def _short(text: Any, width: int = 100) -> str:
    text = "" if text is None else str(text).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _conversation(data: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """The record's turn between its neighbours, one compact line per turn."""
    if not data["session"]:
        return []
    near = data["neighbours"]
    lines = [f"session {record['session_id']}: {len(data['session'])} turns"]
    if near["earlier"]:
        lines.append(f"    ... {near['earlier']} earlier turns")
    this = {"id": record["id"], "turn": record["turn"], "status": data["status"],
            "prompt": record["prompt"], "response": record["response"]}  # fmt: skip
    for turn in [*near["previous"], this, *near["next"]]:
        mark = ">" if turn["id"] == record["id"] else " "
        lines.append(
            f"  {mark} turn {turn['turn']}: {turn['id']} [{turn['status']}] "
            f"user: {_short(turn['prompt'], 50)} | assistant: {_short(turn['response'], 50)}"
        )
    if near["later"]:
        lines.append(f"    ... {near['later']} later turns")
    return lines


def filtered_line(why: dict[str, Any]) -> str:
    """Why a record was filtered, e.g. `filtered (top_ngram, response n=3): 0.62 > max 0.5`."""
    sign = {"min": "<", "max": ">"}.get(why["bound"])
    where = f"{why['filter']}, {why['detail']}" if why.get("detail") else why["filter"]
    if sign is None:  # a language not in the allowed list
        return f"filtered ({where}): not an allowed language (score {why['value']:.3g})"
    return f"filtered ({where}): {why['value']:.3g} {sign} {why['bound']} {why['threshold']:.3g}"


def run_show(args: argparse.Namespace) -> int:
    from pipeline.store.records import show

    data = show(_store(args), args.id)
    record = data["record"]
    lines = [f"status: {data['status']}"]
    if record is not None:
        for key, value in record.items():
            if key == "metadata":
                value = json.dumps(value, ensure_ascii=False, sort_keys=True)
            lines.append(f"  {key}: {_short(value)}")
        if data["status"] == "duplicate":
            lines.append(f"kept as: {data['kept_as']}")
        if data.get("filtered"):
            lines.append(filtered_line(data["filtered"]))
        for dup in data["duplicates"]:
            lines.append(f"duplicate: {dup['id']} ({dup['method']}, {dup['similarity']:.3f})")
        lines.extend(_conversation(data, record))
        for pii in data["pii"]:
            lines.append(f"pii: {pii['field']} {pii['pii_type']} x{pii['count']}")
        for fix in data.get("label_corrections", []):
            lines.append(f"label {fix['action']}: {fix['original_label']!r} -> {fix['label']!r} "
                         f"by {fix['corrected_by']} at {fix['corrected_at']}")  # fmt: skip
    for rej in data["rejected"]:
        lines.append(f"rejected ({rej['reason']}): {rej['detail']}")  # detail names file:line
    emit(data, args.json, "\n".join(lines))
    return 0
