"""`pipeline labels issues` and `pipeline labels review`: likely wrong labels, and decisions."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from pipeline.commands.options import add_config_options, load_config, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add `labels` with its `issues` and `review` subcommands (imports nothing heavy)."""
    labels = sub.add_parser(
        "labels", help="likely wrong labels (cleanlab) and their review",
        description="Find records whose label is likely wrong, and accept, correct or dismiss "
        "them; decisions go to data/corrections.jsonl, applied by the next `dvc repro`.",
    )  # fmt: skip
    actions = labels.add_subparsers(dest="labels_command", metavar="ACTION", required=True)
    issues = actions.add_parser(
        "issues", help="flagged records, most suspicious first",
        description="Cross-validated probabilities over the cached embeddings, fed to "
        "cleanlab's find_label_issues. Reviewed records are left out.",
    )  # fmt: skip
    add_config_options(issues)
    issues.add_argument("--limit", type=positive_int, default=20, help="rows shown (default 20)")
    issues.add_argument("--json", action="store_true", help="print a JSON list of objects")
    issues.set_defaults(func=_issues)

    review = actions.add_parser(
        "review", help="accept, correct or dismiss a flagged record",
        description="With no ID on a terminal: step through the flagged records. With an ID: "
        "record one decision (for scripts).",
    )  # fmt: skip
    add_config_options(review)
    review.add_argument("record_id", nargs="?", help="the record's id (or rid)")
    choice = review.add_mutually_exclusive_group()
    choice.add_argument("--accept", action="store_true", help="take the suggested label")
    choice.add_argument("--correct", metavar="LABEL", help="set this label")
    choice.add_argument("--dismiss", action="store_true", help="the label is right: stop flagging")
    review.add_argument("--by", help="who decides (default: $USER)")
    review.add_argument("--json", action="store_true", help="print JSON")
    review.set_defaults(func=_review)


def _issues(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.labels.issues import find_issues
    from pipeline.labels.review import issues_path, save_issues

    cfg, root = load_config(args), Path(args.root)
    result = find_issues(cfg, root)
    save_issues(issues_path(root / Path(cfg.paths.embed_cache).parent), result)
    rows = result["issues"][: args.limit]
    if args.json:
        emit(rows, True)
        return 0
    print(f"{result['flagged']} of {result['records']} labelled records flagged "
          f"({result['reviewed']} already reviewed); showing {len(rows)}")  # fmt: skip
    print(f"{'id':<14} {'label':<16} {'suggested':<16} {'score':>6}  prompt")
    for row in rows:
        prompt = row["prompt"].replace("\n", " ")[:60]
        print(f"{row['id']:<14} {row['label']:<16} {row['suggested_label']:<16} "
              f"{row['score']:>6.3f}  {prompt}")  # fmt: skip
    return 0


def _review(args: argparse.Namespace) -> int:
    from pipeline.errors import UserInputError

    action = "accept" if args.accept else "correct" if args.correct else (
        "dismiss" if args.dismiss else None)  # fmt: skip
    if args.record_id is None:
        if action is not None:
            raise UserInputError("--accept/--correct/--dismiss need a record ID")
        if not sys.stdin.isatty():
            raise UserInputError(
                "no terminal: give a record ID and --accept, --correct LABEL or --dismiss"
            )
        return _interactive(args)
    if action is None:
        raise UserInputError("give one of --accept, --correct LABEL, --dismiss")
    with _context(args) as (decide_one, _):
        out = decide_one(args.record_id, action, args.correct)
    _print(out, args.json)
    return 0


def _print(out: dict[str, Any], as_json: bool) -> None:
    from pipeline.cli import emit

    change = "kept" if out["action"] == "dismiss" else f"-> {out['label']!r}"
    emit(out, as_json, f"{out['id']}: {out['action']} ({out['previous_label']!r} {change}) "
         f"by {out['by']}; applied by the next `dvc repro`")  # fmt: skip


class _context:
    """The store, paths and reviewer name of one review session."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def __enter__(self) -> tuple[Any, Path]:
        from pipeline.labels.review import decide, issues_path
        from pipeline.store.lookup import StoreReader
        from pipeline.store.scope import Scope

        cfg, root = load_config(self.args), Path(self.args.root)
        self.reader = StoreReader(root / cfg.paths.store)
        issues = issues_path(root / Path(cfg.paths.embed_cache).parent)
        corrections = root / cfg.paths.get("corrections", "data/corrections.jsonl")
        by = self.args.by or os.environ.get("USER") or getpass.getuser()

        def decide_one(record_id: str, action: str, label: str | None) -> dict[str, Any]:
            with self.reader.cursor() as cur:
                return decide(cur, Scope.all(), corrections, issues, record_id, action,
                              label, by)  # fmt: skip

        return decide_one, issues

    def __exit__(self, *exc: object) -> None:
        self.reader.close()


def _interactive(args: argparse.Namespace) -> int:
    """Step through the last `labels issues` result, one prompt per record."""
    from pipeline.dedup.corrections import read
    from pipeline.errors import PipelineError
    from pipeline.labels.review import load_issues

    with _context(args) as (decide_one, issues):
        cfg = load_config(args)
        done = read(Path(args.root) / cfg.paths.get("corrections", "data/corrections.jsonl"))
        todo = [r for r in load_issues(issues)["issues"] if r["id"] not in done]
        print(f"{len(todo)} flagged records to review: [a]ccept the suggestion, "
              "[c]orrect, [d]ismiss, [s]kip, [q]uit")  # fmt: skip
        for row in todo:
            print(f"\n{row['id']}  label {row['label']!r}, suggested {row['suggested_label']!r} "
                  f"(score {row['score']:.3f})\n  {row['prompt']}")  # fmt: skip
            answer = input("a/c/d/s/q? ").strip().lower()[:1]
            if answer == "q":
                break
            actions = {"a": "accept", "c": "correct", "d": "dismiss"}
            if answer not in actions:
                continue
            label = input("label: ").strip() if answer == "c" else None
            try:
                _print(decide_one(row["id"], actions[answer], label), False)
            except PipelineError as exc:
                print(f"error: {exc}", file=sys.stderr)
    return 0
