"""Secrets redaction: precision and recall per type on a generated labelled set with
look-alikes, throughput, and detections on real t0-prompts and hh-rlhf (where every
detection is presumably a false positive), side by side with detect-secrets 1.5.0 (Yelp's
maintained scanner) measured in the same run.

    python benchmarks/secrets_redaction.py [--per-kind 40] [--t0-records 20000]
                                           [--peer-records 3000] [--no-append]

(Not benchmarks/secrets.py: run as a script, that name would shadow the standard `secrets`
module that numpy imports.)

Labelled set: benchmarks/secrets_data.py (deterministic; --per-kind examples of every
secret form and of every look-alike). The peer runs the line-based core of its file scan
(`detect_secrets.core.scan._process_line_based_plugins`, all default plugins and filters)
on each text in memory. Its types do not map one to one onto ours (`Secret Keyword`,
`High Entropy String`), so the comparison is type-agnostic: a labelled secret is found if
any detection overlaps it, a detection is right if it overlaps a labelled secret. Ours is
also scored with types. Throughput and real-data detections: the first --t0-records
records of t0-prompts (subsampled to keep the run under ~10 min on 2 shared cores), all of
hh-rlhf harmless-base-test (chosen and rejected); the peer runs on the first
--peer-records of each and ours is timed on the same slice for the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import itertools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
T0 = DATA / "t0-prompts" / "t0-prompts.jsonl.gz"
HH = DATA / "hh-rlhf" / "harmless-base-test.jsonl.gz"

from results import append_section  # noqa: E402
from secrets_data import examples  # noqa: E402

from pipeline.dedup.pii import evaluate  # noqa: E402
from pipeline.dedup.secrets import SECRET_TYPES, SecretSettings, find_secrets  # noqa: E402

Finder = Callable[[str], list[tuple[int, int, str]]]
PEER_IGNORED = {"Public IP (ipv4)"}  # PII, scored by benchmarks/pii.py, not here


def peer_finder(stack: contextlib.ExitStack) -> tuple[Finder, str] | None:
    """detect-secrets' default plugins and filters as a span finder (its settings open on
    `stack`), or None if absent."""
    try:
        from detect_secrets.__version__ import VERSION
        from detect_secrets.core.scan import _process_line_based_plugins
        from detect_secrets.settings import default_settings
    except ImportError:
        return None
    # The scanner reads its plugins from a global these settings set until they are closed.
    stack.enter_context(default_settings())

    def find(text: str) -> list[tuple[int, int, str]]:
        lines = text.split("\n")
        starts = list(itertools.accumulate((len(line) + 1 for line in lines), initial=0))
        spans = []
        found = _process_line_based_plugins(list(enumerate(lines, start=1)), "prompt.txt")
        for secret in found:
            if secret.type in PEER_IGNORED:
                continue
            line = lines[secret.line_number - 1]
            at = line.find(secret.secret_value or "")
            begin, end = (at, at + len(secret.secret_value)) if at >= 0 else (0, len(line))
            base = starts[secret.line_number - 1]
            spans.append((base + begin, base + end, secret.type))
        return sorted(set(spans))

    return find, f"detect-secrets {VERSION}"


def agnostic(examples: list[dict], finder: Finder) -> tuple[dict[str, tuple[int, int]], float]:
    """Per labelled type (found, labelled) ignoring predicted types, and the precision of all
    predictions ignoring types (right when overlapping any labelled secret)."""
    recall: dict[str, list[int]] = {t: [0, 0] for t in SECRET_TYPES}
    right = total = 0
    for ex in examples:
        gold = [(s["start"], s["end"], s["type"]) for s in ex["spans"]]
        pred = finder(ex["text"])
        for gs, ge, kind in gold:
            recall[kind][1] += 1
            recall[kind][0] += any(s < ge and gs < e for s, e, _ in pred)
        total += len(pred)
        right += sum(any(s < ge and gs < e for gs, ge, _ in gold) for s, e, _ in pred)
    return {k: (v[0], v[1]) for k, v in recall.items()}, right / total if total else 1.0


def quality_lines(examples: list[dict], finders: dict[str, Finder]) -> list[str]:
    """Markdown: per type, ours with types and every finder without; then look-alikes."""
    ours = evaluate(examples, finder=finders["ours"], types=SECRET_TYPES)
    scored = {name: agnostic(examples, f) for name, f in finders.items()}
    names = list(finders)
    lines = [
        "| type | labelled | ours P / R (typed) | "
        + " | ".join(f"{n} recall (any type)" for n in names)
        + " |",
        "|---|---:|---|" + "---:|" * len(names),
    ]
    for kind in SECRET_TYPES:
        s = ours[kind]
        cells = [f"{scored[n][0][kind][0] / max(scored[n][0][kind][1], 1):.3f}" for n in names]
        lines.append(f"| {kind} | {int(s['tp'] + s['fn'])} | {s['precision']:.3f} / "
                     f"{s['recall']:.3f} | " + " | ".join(cells) + " |")  # fmt: skip
    found = {n: sum(v[0] for v in scored[n][0].values()) for n in names}
    labelled = sum(v[1] for v in scored["ours"][0].values())
    lines.append(
        f"| **all, any type** | {labelled} | | "
        + " | ".join(f"R {found[n] / labelled:.3f}, P {scored[n][1]:.3f}" for n in names)
        + " |"
    )
    lines += ["", "Look-alikes (texts with no secret) flagged, by kind:", "",
              "| look-alike | texts | " + " | ".join(f"{n} flagged" for n in names) + " |",
              "|---|---:|" + "---:|" * len(names)]  # fmt: skip
    kinds = sorted({e["kind"] for e in examples if e["kind"].startswith("lookalike:")})
    for kind in kinds:
        subset = [e["text"] for e in examples if e["kind"] == kind]
        flagged = [sum(bool(finders[n](t)) for t in subset) for n in names]
        lines.append(f"| {kind.removeprefix('lookalike:')} | {len(subset)} | "
                     + " | ".join(map(str, flagged)) + " |")  # fmt: skip
    return lines


def load(path: Path, limit: int, fields: tuple[str, ...]) -> list[list[str]]:
    """The `fields` of the first `limit` records of a .jsonl.gz (0 = all)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = itertools.islice(fh, limit) if limit else fh
        return [[r.get(f) or "" for f in fields] for r in map(json.loads, rows)]


def scan(records: list[list[str]], finder: Finder) -> tuple[float, Counter[str], list[str]]:
    """Records per second, detections by type, and a few detections to read."""
    counts: Counter[str] = Counter()
    shown: list[str] = []
    start = time.perf_counter()
    for record in records:
        for text in record:
            for s, e, kind in finder(text):
                counts[kind] += 1
                if len(shown) < 8:
                    shown.append(f"{kind}: {text[max(0, s - 30) : e + 10]!r}"[:160])
    return len(records) / (time.perf_counter() - start), counts, shown


def real_lines(name: str, records: list[list[str]], finders: dict[str, Finder],
               peer_n: int) -> list[str]:  # fmt: skip
    """Markdown: throughput and detections of each finder on real records."""
    lines = [f"**{name}**", "", "| finder | records | records/s | detections | by type |",
             "|---|---:|---:|---:|---|"]  # fmt: skip
    runs = [("ours", records), *((label, records[:peer_n]) for label in finders)]
    read: list[str] = []
    rates: list[float] = []
    for label, subset in runs:
        rate, counts, shown = scan(subset, finders[label])
        rates.append(rate)
        lines.append(f"| {label} | {len(subset):,} | {rate:,.0f} | {sum(counts.values())} | "
                     f"{json.dumps(dict(counts.most_common(6)))} |")  # fmt: skip
        read = read or shown
    if len(rates) == 3:  # ours and the peer on the same slice, one after the other
        lines.append(f"| ratio ours / peer, same {min(peer_n, len(records)):,} records | | "
                     f"{rates[1] / rates[2]:,.0f}x | | |")  # fmt: skip
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return [*lines, "", f"Load average during the run (shared machine): {load}.",
            "Ours' detections, to read: " + ("; ".join(read) or "none"), ""]  # fmt: skip


def main() -> int:
    """Run the benchmark, print the tables, append them to RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=40, help="examples per form")
    parser.add_argument("--t0-records", type=int, default=20000, help="t0 records (0 = all)")
    parser.add_argument("--peer-records", type=int, default=3000, help="records for the peer")
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    settings = SecretSettings()
    finders: dict[str, Finder] = {"ours": lambda text: find_secrets(text, settings)}
    stack = contextlib.ExitStack()
    peer = peer_finder(stack)
    if peer is None:
        print("detect-secrets is not installed (pip install detect-secrets): peer skipped")
    else:
        finders[peer[1]] = peer[0]
    labelled = examples(per_kind=args.per_kind)
    secrets = sum(len(e["spans"]) for e in labelled)
    lines = [
        f"Labelled set: {len(labelled)} texts from benchmarks/secrets_data.py, {secrets} "
        f"secrets, {sum(not e['spans'] for e in labelled)} texts with look-alikes only. "
        "Written by the rules' author: read recall as an upper bound.",
        "",
        *quality_lines(labelled, finders),
        "",
    ]
    for name, path, limit, fields in (
        ("t0-prompts (prompt + response)", T0, args.t0_records, ("prompt", "response")),
        ("hh-rlhf harmless-base-test (chosen + rejected)", HH, 0, ("chosen", "rejected")),
    ):
        if path.exists():
            lines += real_lines(name, load(path, limit, fields), finders, args.peer_records)
        else:
            lines.append(f"{name} skipped: {path} is absent.")
    stack.close()
    print("\n".join(lines))
    if not args.no_append:
        command = (
            f"python benchmarks/secrets_redaction.py --per-kind {args.per_kind} "
            f"--t0-records {args.t0_records} --peer-records {args.peer_records}"
        )
        append_section("Secrets redaction", command, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
