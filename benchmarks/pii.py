"""PII redaction: precision and recall per type on the labelled set, and throughput on
t0-prompts, side by side with scrubadub (the regex + phonenumbers library a user would pick
that installs from PyPI and runs without model downloads), measured in the same run.

    python benchmarks/pii.py [--records 0] [--peer-records 3000] [--no-append]

Quality: tests/data/pii_labelled.jsonl (a `dev` part the rules were tuned on and a `heldout`
part written afterwards and never tuned on), span-overlap matching per type. Throughput:
records per second redacting prompt and response of t0-prompts (all records, or --records);
the peer runs on the first --peer-records records and ours is timed on the same slice too,
for the ratio. Appends a section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
T0 = REPO.parent / "shared" / "data" / "t0-prompts" / "t0-prompts.jsonl.gz"
LABELLED = REPO / "tests" / "data" / "pii_labelled.jsonl"

from results import append_section  # noqa: E402

from pipeline.dedup.pii import PII_TYPES, PiiSettings, evaluate, find_pii, redact  # noqa: E402

# scrubadub filth type -> ours; it has no IP detector, and its url/twitter/credential
# detections are not scored (neither a hit nor a false positive here).
PEER_TYPES = {
    "email": "email",
    "phone": "phone",
    "credit_card": "card",
    "social_security_number": "national_id",
}

Finder = Callable[[str], list[tuple[int, int, str]]]


def peer_finder() -> tuple[Finder, Callable[[str], str]] | None:
    """scrubadub's default scrubber as a span finder and a cleaner, or None if not installed."""
    try:
        import scrubadub
    except ImportError:
        return None
    scrubber = scrubadub.Scrubber()

    def find(text: str) -> list[tuple[int, int, str]]:
        return sorted(
            (f.beg, f.end, PEER_TYPES[f.type])
            for f in scrubber.iter_filth(text)
            if f.type in PEER_TYPES
        )

    return find, scrubber.clean


def quality_rows(examples: list[dict], finders: dict[str, Finder]) -> list[str]:
    """Markdown rows: per type and split, precision / recall of each finder."""
    rows = []
    for split in ("dev", "heldout", "all"):
        subset = [e for e in examples if split == "all" or e.get("split") == split]
        scores = {name: evaluate(subset, finder=f) for name, f in finders.items()}
        for kind in PII_TYPES:
            n = int(scores["ours"][kind]["tp"] + scores["ours"][kind]["fn"])
            cells = []
            for name in finders:
                s = scores[name][kind]
                if name != "ours" and kind == "ip":
                    cells.append("n/a (no detector)")
                    continue
                cells.append(f"{s['precision']:.3f} / {s['recall']:.3f}")
            rows.append(f"| {split} | {kind} | {n} | " + " | ".join(cells) + " |")
    return rows


def load_t0(limit: int) -> list[tuple[str, str]]:
    """(prompt, response) pairs of t0-prompts, in file order."""
    with gzip.open(T0, "rt", encoding="utf-8") as fh:
        lines = itertools.islice(fh, limit) if limit else fh
        return [(r["prompt"], r["response"]) for r in map(json.loads, lines)]


def records_per_second(records: list[tuple[str, str]], clean: Callable[[str], object]) -> float:
    """Records per second cleaning prompt and response of each record."""
    start = time.perf_counter()
    for prompt, response in records:
        clean(prompt)
        clean(response)
    return len(records) / (time.perf_counter() - start)


def main() -> int:
    """Run the benchmark, print the tables, append them to RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=0, help="t0 records (0 = all)")
    parser.add_argument("--peer-records", type=int, default=3000, help="t0 records for the peer")
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    settings = PiiSettings()
    examples = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    finders: dict[str, Finder] = {"ours": lambda text: find_pii(text, settings)}
    peer = peer_finder()
    if peer is None:
        print("scrubadub is not installed (pip install scrubadub): peer columns skipped")
    else:
        finders["scrubadub 2.0.1"] = peer[0]
    header = "| split | type | labelled | " + " | ".join(f"{n} P / R" for n in finders) + " |"
    lines = [
        f"Labelled set: {len(examples)} lines ({sum(not e['spans'] for e in examples)} "
        "without PII); P / R = precision / recall, span overlap per type.",
        "",
        header,
        "|" + "---|" * (3 + len(finders)),
        *quality_rows(examples, finders),
        "",
    ]
    if T0.exists():
        records = load_t0(args.records)
        ours = records_per_second(records, lambda t: redact(t, settings))
        found: dict[str, int] = {}
        for prompt, response in records:
            for text in (prompt, response):
                for _, _, kind in find_pii(text, settings):
                    found[kind] = found.get(kind, 0) + 1
        lines += [
            f"t0-prompts, prompt + response: ours {ours:,.0f} records/s on {len(records):,} "
            f"records; found {json.dumps(dict(sorted(found.items())))}.",
        ]
        if peer is not None:
            subset = records[: args.peer_records]
            ours_subset = records_per_second(subset, lambda t: redact(t, settings))
            theirs = records_per_second(subset, peer[1])
            lines += [
                "",
                "| on the first N t0 records | N | records/s |",
                "|---|---:|---:|",
                f"| ours | {len(subset):,} | {ours_subset:,.0f} |",
                f"| scrubadub 2.0.1 (default detectors) | {len(subset):,} | {theirs:,.0f} |",
                f"| ratio ours / scrubadub | | {ours_subset / theirs:,.1f}x |",
            ]
    else:
        lines.append(f"t0-prompts throughput skipped: {T0} is absent.")
    print("\n".join(lines))
    if not args.no_append:
        command = (
            f"python benchmarks/pii.py --records {args.records} --peer-records {args.peer_records}"
        )
        append_section("PII redaction", command, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
