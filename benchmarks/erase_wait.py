"""How long `pipeline erase` waits for a running `pipeline dedup` (the writer lock).

For each dataset: a project in a temporary directory runs `pipeline dedup` once (so a store
exists), then again; as soon as the second run holds the writer lock, `pipeline erase`
starts. Measured: the dedup run's wall time, the erase's wall time from its start, and how
much of it was spent waiting (until the dedup exited). Appends a section to RESULTS.md.

    python benchmarks/erase_wait.py [--t0 PATH] [--no-append]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import append_section

REPO = Path(__file__).resolve().parent.parent
T0 = REPO.parent / "shared" / "data" / "t0-prompts" / "t0-prompts.jsonl.gz"
ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


def _project(root: Path, data: str | None, raw: Path) -> None:
    from pipeline.config import compose, to_yaml

    cfg = compose([f"data={data}"] if data else [])
    cfg.data.path = str(raw)
    (root / "params.yaml").write_text(to_yaml(cfg), encoding="utf-8")


def _pipeline(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args], cwd=root, env=ENV, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def measure(name: str, data: str | None, raw: Path) -> dict[str, float | str]:
    """One dataset: (dedup seconds, erase seconds, of which waiting)."""
    with tempfile.TemporaryDirectory(prefix="erase-wait-") as tmp:
        root = Path(tmp)
        _project(root, data, raw)
        first = _pipeline(root, "dedup")
        assert first.wait() == 0, first.stderr.read()
        lock = root / "data" / ".writer.lock"
        started = time.monotonic()
        dedup = _pipeline(root, "dedup")
        holder = f'"pid": {dedup.pid}'  # the file names its current (or last) holder
        while holder not in (lock.read_text() if lock.exists() else ""):
            time.sleep(0.01)  # polling the lock file for its holder: a benchmark, not a test
        erase_start = time.monotonic()
        erase = _pipeline(root, "erase", "--user-id", "nobody-in-particular", "--json")
        assert dedup.wait() == 0, dedup.stderr.read()
        dedup_end = time.monotonic()
        assert erase.wait() == 0, erase.stderr.read()
        erase_end = time.monotonic()
        report = json.loads((root / "reports" / "dedup.json").read_text())
    return {
        "dataset": name,
        "records": f"{report['input_records']:,}",
        "dedup_s": round(dedup_end - started, 1),
        "erase_s": round(erase_end - erase_start, 1),
        "waited_s": round(dedup_end - erase_start, 1),
        "after_lock_s": round(erase_end - dedup_end, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--t0", type=Path, default=T0, help="t0-prompts .jsonl.gz (skipped if absent)"
    )
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    rows = [measure("sample (data/raw)", None, REPO / "data" / "raw")]
    if args.t0.exists():
        rows.append(measure("t0-prompts", "t0_prompts", args.t0))
    header = ["dataset", "records", "dedup_s", "erase_s", "waited_s", "after_lock_s"]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    print("\n".join(table))
    if args.no_append:
        return
    load = os.getloadavg()[0]
    append_section(
        "Erase waiting for a running dedup",
        "python benchmarks/erase_wait.py",
        [
            f"Load average {load:.1f} at the end. `pipeline erase` starts as soon as a second "
            "`pipeline dedup` holds the writer lock; dedup_s is that run's wall time, erase_s "
            "the erase's from its start, waited_s the part before the dedup exited, "
            "after_lock_s the erasure itself (process start-up and imports overlap the wait).",
            "",
            *table,
        ],
    )


if __name__ == "__main__":
    main()
