"""Reader speed: t0-prompts as JSON Lines (LF, CRLF, CR) and as a JSON array (intact, and
with every 100th element cut short), read by `pipeline.io.readers.read_file`, optionally
against another checkout in alternating rounds.

    python benchmarks/readers.py [--rounds 5] [--base ../main] [--t0 PATH] [--note TEXT]

The files are written to a temporary directory (never into the repository). Each timing is
one fresh process reading one file to the end (rows are counted, not kept), so neither
checkout warms the other's caches; the figures are the CPU time of the process's read,
least and median over the rounds (on a shared machine the least is the steadiest). With
--base, the same files are read by the `pipeline` package of that checkout in the same
rounds, alternating, so machine load hits both alike. Appends a section to RESULTS.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from results import append_section

REPO = Path(__file__).resolve().parent.parent
T0 = REPO.parent / "shared" / "data" / "t0-prompts" / "t0-prompts.jsonl.gz"

# Run in a child process: import `pipeline` from the given checkout, read one file, print
# rows, rejected rows and CPU seconds (on a shared machine, wall time mostly measures the
# other jobs).
_CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from pipeline.io.readers import ReadStats, read_file
path = Path(sys.argv[2])
stats = ReadStats()
start = time.process_time()
rows = bad = 0
for row in read_file(path, path.name, 2_000_000, stats):
    rows += 1
    bad += row.reason is not None
print(rows, bad, time.process_time() - start)
"""


def write_inputs(t0: Path, directory: Path) -> dict[str, Path]:
    """t0-prompts as .jsonl with LF, CRLF and CR line ends, and as a .json array."""
    with gzip.open(t0, "rb") as fh:
        lines = [line.rstrip(b"\n") for line in fh]
    files = {
        "jsonl, LF": directory / "t0.jsonl",
        "jsonl, CRLF": directory / "t0_crlf.jsonl",
        "jsonl, CR": directory / "t0_cr.jsonl",
        "json array": directory / "t0.json",
    }
    files["jsonl, LF"].write_bytes(b"\n".join(lines) + b"\n")
    files["jsonl, CRLF"].write_bytes(b"\r\n".join(lines) + b"\r\n")
    files["jsonl, CR"].write_bytes(b"\r".join(lines) + b"\r")
    records = [json.loads(line) for line in lines]
    files["json array"].write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    # Every 100th element loses its closing quote and brace: the quotes go out of step.
    texts = [json.dumps(r, ensure_ascii=False) for r in records]
    broken = [t[:-2] if i % 100 == 99 else t for i, t in enumerate(texts)]
    files["json array, 1% broken"] = directory / "t0_broken.json"
    files["json array, 1% broken"].write_text("[" + ", ".join(broken) + "]", encoding="utf-8")
    return files


def time_read(checkout: Path, path: Path) -> tuple[int, int, float]:
    """(rows, rejected rows, CPU seconds) of one fresh process reading `path`."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(checkout), str(path)],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    return int(out[0]), int(out[1]), float(out[2])


def main() -> int:
    """Time every format with this checkout (and --base), print a table, append it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed reads per file and checkout")
    parser.add_argument("--base", type=Path, help="another checkout to compare (e.g. ../main)")
    parser.add_argument("--t0", type=Path, default=T0, help="t0-prompts.jsonl.gz")
    parser.add_argument("--note", default="", help="a sentence for RESULTS.md (what --base is)")
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    if not args.t0.exists():
        print(f"{args.t0} is absent; nothing to measure")
        return 0
    checkouts = {"this": REPO} | ({"base": args.base.resolve()} if args.base else {})
    lines = [
        "| file | MB | checkout | rows | rejected | least CPU s | median CPU s | MB/s (least) "
        "| runs, CPU s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in write_inputs(args.t0, Path(tmp)).items():
            size = path.stat().st_size / 1e6
            runs: dict[str, list[float]] = {name: [] for name in checkouts}
            counts: dict[str, tuple[int, int]] = {}
            for _ in range(args.rounds):
                for name, checkout in checkouts.items():
                    rows, bad, seconds = time_read(checkout, path)
                    runs[name].append(seconds)
                    counts[name] = (rows, bad)
            for name in checkouts:
                least, median = min(runs[name]), statistics.median(runs[name])
                rows, bad = counts[name]
                times = ", ".join(f"{s:.2f}" for s in runs[name])
                lines.append(
                    f"| {label} | {size:.1f} | {name} | {rows:,} | {bad:,} | {least:.2f} "
                    f"| {median:.2f} | {size / least:.0f} | {times} |"
                )
    print("\n".join(lines))
    if not args.no_append:
        base = f" --base {args.base}" if args.base else ""
        command = f"python benchmarks/readers.py --rounds {args.rounds}{base}"
        append_section("Readers", command, [*([args.note, ""] if args.note else []), *lines])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
