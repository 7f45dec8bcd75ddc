"""Reading chat exports: 100k synthetic OpenAI-style conversations (`messages` with a system
prompt, 1-6 turns, some content as parts, some tool calls) read by our reader (the JSON
Lines reader + shape detection + conversation expansion + validation into records) against
Hugging Face `datasets.load_dataset("json", ...)`, a user's usual first step, in the same run.

    python benchmarks/shapes.py [--conversations 100000] [--rounds 3] [--stage]

Each timing is one fresh process (so peak memory is its own): wall and CPU seconds and the
peak resident set size (ru_maxrss), with the interpreter and imports counted apart (peak
minus the RSS after imports). Rounds alternate the readers so machine load hits both alike;
the least of each figure is reported. `--stage` also runs the whole dedup stage (near
duplicates off) on the same file to show it stays streaming. Appends a section to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from results import append_section

REPO = Path(__file__).resolve().parent.parent

_WORDS = (
    "parcel refund order delivery account password invoice shipping address label damaged "
    "late courier payment card receipt warranty return exchange size colour store manager "
    "weekend morning tracking number customer support email phone"
)

WORDS = _WORDS.split()

_OURS = """
import resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from pipeline.dedup.collect import Collector
from pipeline.dedup.validate import FieldMap, ValidateSettings
from pipeline.io.readers import ReadStats, read_file
from pipeline.record import Record
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
path = Path(sys.argv[2])
fields = FieldMap.from_cfg({"name": "bench"})
collector = Collector(fields, ValidateSettings(), None, lambda rid: None)
wall, cpu = time.perf_counter(), time.process_time()
records = 0
for row in read_file(path, path.name, 2_000_000, ReadStats()):
    for item in collector.feed(row):
        records += isinstance(item, Record)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(records, time.perf_counter() - wall, time.process_time() - cpu, base, peak)
"""

_DATASETS = """
import os, resource, sys, time
os.environ["HF_DATASETS_OFFLINE"] = "1"
import datasets
datasets.disable_progress_bars()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
wall, cpu = time.perf_counter(), time.process_time()
ds = datasets.load_dataset("json", data_files=sys.argv[2], split="train", cache_dir=sys.argv[3])
rows = ds.num_rows
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(rows, time.perf_counter() - wall, time.process_time() - cpu, base, peak)
"""

_STAGE = """
import resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from pipeline.config import compose
from pipeline.stages.dedup import run
root = Path(sys.argv[3])
cfg = compose([f"tracking.uri=sqlite:///{root}/mlflow.db", "dedup.near.enabled=false"])
cfg.data.path = sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
wall, cpu = time.perf_counter(), time.process_time()
report = run(cfg, root)
assert report["accounting"]["holds"]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(report["input_records"], time.perf_counter() - wall, time.process_time() - cpu, base, peak)
"""


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def conversation(rng: random.Random, i: int) -> dict:
    """One synthetic chat export line."""
    messages = [{"role": "system", "content": "You are the support desk of shop " + str(i % 50)}]
    for turn in range(rng.randint(1, 6)):
        prompt = f"{_text(rng, rng.randint(5, 25))} Order {i}-{turn}?"
        if rng.random() < 0.1:
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": prompt},
                        {"type": "image_url", "image_url": {"url": "https://example.com/p.png"}},
                    ],
                }
            )
        else:
            messages.append({"role": "user", "content": prompt})
        if rng.random() < 0.1:
            call = {
                "id": f"t{turn}",
                "type": "function",
                "function": {"name": "lookup", "arguments": f'{{"order": {i}}}'},
            }
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            messages.append({"role": "tool", "tool_call_id": f"t{turn}", "content": "shipped"})
        messages.append({"role": "assistant", "content": _text(rng, rng.randint(10, 40))})
    return {"id": f"conv-{i}", "user": f"u{i % 5000}", "messages": messages}  # fmt: skip


def write_file(path: Path, n: int) -> None:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps(conversation(rng, i)) + "\n")


def measure(code: str, *args: str) -> tuple[int, float, float, float]:
    """(rows or records, wall s, CPU s, peak MB above the imports) of one fresh process
    (its last line of output: the stage prints progress before it)."""
    proc = subprocess.run([sys.executable, "-c", code, str(REPO), *args], check=True,
                          capture_output=True, text=True)  # fmt: skip
    out = proc.stdout.splitlines()[-1].split()
    count, wall, cpu, base, peak = int(out[0]), *map(float, out[1:])
    return count, wall, cpu, (peak - base) / 1024


def main() -> int:
    """Time both readers (and the stage with --stage); print a table and append it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stage", action="store_true", help="also run the dedup stage once")
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    runs: dict[str, list[tuple[int, float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chat.jsonl"
        write_file(path, args.conversations)
        size = path.stat().st_size / 1e6
        for round_ in range(args.rounds):
            runs.setdefault("ours", []).append(measure(_OURS, str(path)))
            cache = Path(tmp) / f"hf-cache-{round_}"  # a fresh cache: a first load, every time
            runs.setdefault("datasets", []).append(measure(_DATASETS, str(path), str(cache)))
        if args.stage:
            stage_root = Path(tmp) / "stage"
            stage_root.mkdir()
            runs["stage"] = [measure(_STAGE, str(path), str(stage_root))]
    names = {"ours": "ours: read + detect + expand + validate (records)",
             "datasets": 'datasets.load_dataset("json") (rows)',
             "stage": "ours: the whole dedup stage, near off (records)"}  # fmt: skip
    lines = [
        f"{args.conversations:,} synthetic chat conversations, {size:.0f} MB of JSON Lines; "
        f"least of {args.rounds} fresh processes (the stage: 1).",
        "",
        "| reader | rows or records | wall s | CPU s | conversations/s (wall) "
        "| peak MB above imports |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, results in runs.items():
        count = results[0][0]
        wall, cpu, peak = (min(r[i] for r in results) for i in (1, 2, 3))
        lines.append(f"| {names[key]} | {count:,} | {wall:.1f} | {cpu:.1f} "
                     f"| {args.conversations / wall:,.0f} | {peak:.0f} |")  # fmt: skip
    print("\n".join(lines))
    if not args.no_append:
        command = (f"python benchmarks/shapes.py --conversations {args.conversations} "
                   f"--rounds {args.rounds}{' --stage' if args.stage else ''}")  # fmt: skip
        append_section("Reading chat exports (shapes)", command, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
