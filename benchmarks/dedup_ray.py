"""The whole dedup stage on Ray Data (`dedup.engine=ray`) with 1 and 2 workers, and the local
engine beside it, on planted records (t0 windows with variants at target Jaccards).

    .venv/bin/python benchmarks/dedup_ray.py --records 50000 200000

Each run is a fresh spawned process (its own Ray cluster of `num_cpus` workers, shut down
at its end). Memory per worker: the highest resident set of any Ray worker process
(`ray::...`) sampled every 0.2 s; the driver's peak RSS is given apart. Checks that the
three runs at each size publish the same records, duplicates and rejections. Prints where
the time went (the driver's serial read/validate/stage, the work on Ray, the publication)
and appends one section, every size in it, to RESULTS.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # runnable without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dedup_truth import planted_set  # noqa: E402

T0 = REPO.parent / "shared" / "data" / "t0-prompts" / "t0-prompts.jsonl.gz"
RESULTS = REPO / "benchmarks" / "RESULTS.md"


def write_planted(raw: Path, n: int) -> None:
    with gzip.open(T0, "rt", encoding="utf-8") as fh:
        sources = [json.loads(line)["prompt"] for line in fh]
    texts = planted_set(sources, n, seed=1)[0]
    raw.mkdir(parents=True)
    with (raw / "planted.jsonl").open("w", encoding="utf-8") as fh:
        for i, text in enumerate(texts):
            fh.write(json.dumps({"id": f"p{i}", "prompt": text, "response": "ok"}) + "\n")


def _status_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, RssAnon) of a process in MB: all its resident pages, and its private
    anonymous ones (the heap), without the object store's shared pages a worker maps."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("RssAnon", 0.0)


def _worker_peak(stop: threading.Event, peak: list[Any]) -> None:
    """The highest RSS and the highest private (anonymous) RSS of any Ray worker process
    (MB), and the title (a task's or actor's name) of the process at the private peak."""
    import psutil

    me = psutil.Process()
    while not stop.wait(0.2):
        for child in me.children(recursive=True):
            try:
                title = " ".join(child.cmdline())
                if child.name().startswith("ray::") or "default_worker" in title:
                    rss, anon = _status_mb(child.pid)
                    peak[0] = max(peak[0], rss)
                    if anon > peak[2]:
                        peak[1], peak[2] = title[:60].strip(), anon
            except (psutil.Error, OSError):  # a worker that just exited
                continue


def _stage(root: str, raw: str, overrides: list[str]) -> dict[str, Any]:
    from pipeline.config import compose
    from pipeline.stages.dedup import run

    cfg = compose(["data=sample", f"data.path={raw}", f"tracking.uri=sqlite:///{root}/mlflow.db",
                   "dedup.semantic.enabled=false", *overrides])  # fmt: skip
    stop, peak = threading.Event(), [0.0, "", 0.0]
    sampler = threading.Thread(target=_worker_peak, args=(stop, peak), daemon=True)
    sampler.start()
    start = time.perf_counter()
    report = run(cfg, Path(root))
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent.
    status = Path("/proc/self/status").read_text()
    driver = int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1]) / 1024
    import duckdb

    con = duckdb.connect(str(Path(root) / "data" / "dedup" / "store.duckdb"), read_only=True)
    digest = [con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
              for t in ("records", "duplicates", "filtered", "rejected")]  # fmt: skip
    con.close()
    return {"seconds": seconds, "driver_mb": driver, "worker_mb": peak[0], "peak_in": peak[1],
            "worker_anon_mb": peak[2],
            "steps": report["seconds"], "kept": report["kept"],
            "near": report["near_duplicates"], "exact": report["exact_duplicates"],
            "digest": hashlib.sha256(repr(digest).encode()).hexdigest()}  # fmt: skip


def in_child(root: Path, raw: Path, overrides: list[str]) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_stage, str(root), str(raw), overrides).result()


RUNS = {"local": ["dedup.engine=local"],
        "ray, 1 worker": ["dedup.engine=ray", "dedup.ray.num_cpus=1"],
        "ray, 2 workers": ["dedup.engine=ray", "dedup.ray.num_cpus=2"]}  # fmt: skip


def _size(n: int, runs: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Every run on the same n planted records."""
    with tempfile.TemporaryDirectory(prefix="dedup_ray_") as tmp:
        raw = Path(tmp) / "raw"
        write_planted(raw, n)
        out = {}
        for label, overrides in runs.items():
            root = Path(tmp) / label.replace(" ", "_").replace(",", "")
            root.mkdir()
            out[label] = in_child(root, raw, overrides)
            shutil.rmtree(root / "data", ignore_errors=True)
    return out


def _phases(seconds: dict[str, float]) -> tuple[float, float, float, float]:
    """(the driver's serial part, reading and validation, the curation work, publication)
    seconds of one run's report. Reading and validation: on Ray (`ray_read`) or, locally,
    in process (`read`, less the redaction, hashing and staging timed inside it). The serial
    part is the rest of the driver's time: hashing the input, staging, Ray's start-up. The
    curation work is redaction, hashing, MinHash and the steps."""
    publish = seconds.get("write", 0.0) + seconds.get("labels", 0.0)
    read = seconds.get("ray_read", 0.0) + seconds.get("read", 0.0)
    serial = {"hash", "read", "ray_read", "stage", "write", "labels", "total"}
    steps = sum(v for k, v in seconds.items() if k not in serial)
    return seconds["total"] - publish - steps - read, read, steps, publish


def _per_partition(overrides: list[str]) -> str:
    from pipeline.config import compose

    ray = compose(overrides).dedup.ray
    if ray.partitions is not None:
        return f"fixed at {ray.partitions} partitions"
    return f"{ray.records_per_partition:,} rows each"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[20_000],
                        help="planted records (one or more sizes, run in turn)")  # fmt: skip
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS),
                        help="which runs (default all three)")  # fmt: skip
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every run (dedup.ray.partitions=8)")  # fmt: skip
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args()
    if not T0.exists():
        sys.exit(f"{T0} is absent: the planted set is spliced from t0-prompts")
    load_before = os.getloadavg()
    rows = ["| run | records | seconds | records/s | read, validate s | driver: hash, stage, "
            "start s | curation s | publish s | driver peak RSS MB | peak RSS per Ray worker "
            "MB: all / private | kept | exact | near |", "|---" * 13 + "|"]  # fmt: skip
    notes = []
    for n in args.records:
        out = _size(n, {label: RUNS[label] + args.set for label in args.runs})
        for label, o in out.items():
            worker = f"{o['worker_mb']:,.0f} / {o['worker_anon_mb']:,.0f}" if label != "local" \
                else "-"  # fmt: skip
            driver, read, ray_s, publish = _phases(o["steps"])
            rows.append(f"| {label} | {n:,} | {o['seconds']:.1f} | {n / o['seconds']:,.0f} | "
                        f"{read:.1f} | {driver:.1f} | {ray_s:.1f} | {publish:.1f} | "
                        f"{o['driver_mb']:,.0f} | "
                        f"{worker} | {o['kept']:,} | {o['exact']:,} | {o['near']:,} |")  # fmt: skip
            print(rows[-1], flush=True)
        peaks = [f"{label}: {o['peak_in']}" for label, o in out.items() if o["peak_in"]]
        if peaks:
            notes.append(f"- {n:,} records, the Ray process at the private peak: "
                         + "; ".join(peaks)
                         + ".")  # fmt: skip
        same = len({o["digest"] for o in out.values()}) == 1
        note = f"- {n:,} records: the runs published the same records, duplicates, " \
            f"filtered and rejected rows: {'yes' if same else 'NO'}"  # fmt: skip
        if {"ray, 1 worker", "ray, 2 workers"} <= set(out):
            speedup = out["ray, 1 worker"]["seconds"] / out["ray, 2 workers"]["seconds"]
            note += f"; speed-up from 1 to 2 workers {speedup:.2f}x (goal >= 1.7x: " \
                f"{'met' if speedup >= 1.7 else 'not met'})"  # fmt: skip
        notes.append(note + ".")
    load_after = os.getloadavg()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sizes = " ".join(str(n) for n in args.records)
    if args.set:
        sizes += " --set " + " ".join(args.set)
    section = [
        f"\n## Dedup stage on Ray Data, 1 vs 2 workers ({now})\n",
        f"Machine: {os.cpu_count()} cores shared with other jobs (load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after). Python "
        f"{sys.version.split()[0]}. Command: `python benchmarks/dedup_ray.py --records "
        f"{sizes}`. The whole stage (read, validate, redact, quality, exact, near, "
        "publish; semantic off) on planted records, each run in a fresh process with its "
        "own local Ray cluster. `read, validate` is reading and validating the input (on Ray "
        "for the ray runs: one task per file or 16 MiB byte range); `driver` the serial rest "
        "(hashing the input files, staging the redacted records, Ray's start-up); "
        "`curation` redaction, hashing, MinHash, quality, exact and near (on Ray, or in "
        "process for `local`). Per Ray worker: the highest RSS of any worker process, all "
        "resident pages (including the object store's shared pages it has mapped) / private "
        "anonymous pages only (RssAnon: its own heap). Shuffle partitions (`dedup.ray`): "
        f"{_per_partition(args.set)}.\n",
        *rows,
        "",
        *notes,
        "",
    ]
    text = "\n".join(section)
    print(text)
    if not args.no_append:
        with RESULTS.open("a", encoding="utf-8") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
