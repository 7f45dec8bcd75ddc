"""Drift detection on planted windows: our monitor against Evidently, same windows, same run.

    python benchmarks/monitor.py [--per-task 60] [--window 100] [--undrifted 8]
                                 [--peer-python PEER/bin/python] [--cache data/cache/embeddings]

Bounded to a few minutes on 2 shared cores: T0 is subsampled (--per-task prompts of each of
five tasks as the training set, then fresh prompts of the same tasks for the windows).

1. A nearest-centroid classifier on the training prompts' MiniLM embeddings stands in for
   the champion (tests/helpers/drift.py); its predictions on each window go through the real
   prediction log (data in a temporary service DB) and `monitor_report`.
2. Windows: --undrifted windows of unseen T0 prompts (a flag is a false alarm), then a ramp
   whose share of hh-rlhf first turns grows by 5 points a window (5 % ... 40 %): windows to
   detection is the first ramp window flagged; then one window of hh-rlhf only.
3. Peer: Evidently 0.7's embedding drift methods (domain classifier with bootstrap, its
   default under 1,000 reference rows; and MMD with bootstrap) on the same windows' full
   384-d vectors, in --peer-python (benchmarks/monitor_peer.py says why a second venv).
Results are printed and appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from benchmarks.results import append_section, offline  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def _windows(args: argparse.Namespace) -> tuple[list, list[list[str]], list[str]]:
    from helpers.drift import hh_turns, t0_rows

    t0 = Path(args.data) / "t0-prompts" / "t0-prompts.jsonl.gz"
    hh = Path(args.data) / "hh-rlhf" / "harmless-base-test.jsonl.gz"
    ramp = [0.05 * (i + 1) for i in range(8)]
    need = args.undrifted * args.window + int(sum(1 - s for s in ramp) * args.window) + 5
    rows = t0_rows(t0, per_task=args.per_task + need // 5 + 1)
    train, fresh = rows[: 5 * args.per_task], [t for t, _ in rows[5 * args.per_task :]]
    hh_texts = hh_turns(hh, int(sum(ramp) * args.window) + args.window + 5)
    windows, names = [], []
    for i in range(args.undrifted):
        windows.append(fresh[: args.window])
        fresh = fresh[args.window :]
        names.append(f"undrifted {i + 1}")
    for share in ramp:
        k = round(share * args.window)
        windows.append(fresh[: args.window - k] + hh_texts[:k])
        fresh, hh_texts = fresh[args.window - k :], hh_texts[k:]
        names.append(f"ramp {share:.0%} hh")
    windows.append(hh_texts[: args.window])
    names.append("hh only")
    return train, windows, names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--per-task", type=int, default=60)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--undrifted", type=int, default=8)
    parser.add_argument("--peer-python", default=None)
    parser.add_argument("--cache", default=str(REPO / "data" / "cache" / "embeddings"))
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    offline()

    from helpers.drift import NearestCentroid, replay

    from pipeline.embed import EmbedSettings, embed_texts
    from pipeline.monitor.log import PredictionLog
    from pipeline.monitor.reference import reference_from
    from pipeline.monitor.report import monitor_report
    from pipeline.monitor.settings import MonitorSettings

    def embed(texts: list[str]) -> np.ndarray:
        return embed_texts(texts, EmbedSettings(), cache_dir=args.cache)

    train, windows, names = _windows(args)
    started = time.perf_counter()
    vectors = [embed(w) for w in windows]  # fills the cache: the log's embedding hits it
    train_vectors = embed([t for t, _ in train])
    embed_s = time.perf_counter() - started
    settings = MonitorSettings(min_predictions=args.window // 2, sample_size=args.window)
    reference = reference_from([lab for _, lab in train], train_vectors, settings)
    model = NearestCentroid(embed, train)
    ours: dict[str, list[bool]] = {"ours: embedding MMD": [], "ours: any threshold": []}
    with tempfile.TemporaryDirectory() as tmp:
        log = PredictionLog(Path(tmp) / "service.duckdb", embedder=embed)
        starts = replay(log, [model.predict(w) for w in windows], timedelta(hours=1))
        t = time.perf_counter()
        report = monitor_report(log.service_db, reference, settings, "1h", since=starts[0])
        ours_s = (time.perf_counter() - t) / len(windows)
        for w in report["windows"]:
            ours["ours: embedding MMD"].append(any("embedding" in r for r in w["reasons"]))
            ours["ours: any threshold"].append(w["status"] == "drift")
        peer = _peer(args, train_vectors, vectors, tmp)
    timing = {"ours: embedding MMD": ours_s, "ours: any threshold": ours_s}
    timing.update({k: float(np.mean(v["seconds"])) for k, v in peer.items()})
    flags = {**ours, **{k: v["flags"] for k, v in peer.items()}}
    lines = _table(flags, timing, names, args)
    lines.append("")
    lines.append(
        f"Embedding {sum(map(len, windows)) + len(train)} texts (cached after): {embed_s:.0f} s; "
        f"load average {os.getloadavg()[0]:.1f} at the end (2 shared cores: seconds are wall)."
    )
    print("\n".join(lines))
    if not args.no_append:
        command = "python benchmarks/monitor.py " + " ".join(sys.argv[1:])
        append_section("Drift detection: monitor vs Evidently", command.strip(), lines)


def _peer(args: argparse.Namespace, reference: np.ndarray, windows: list, tmp: str) -> dict:
    if not args.peer_python:
        print("no --peer-python: Evidently not measured", file=sys.stderr)
        return {}
    path = Path(tmp) / "windows.npz"
    np.savez(path, reference=reference, **{f"window_{i:03d}": w for i, w in enumerate(windows)})
    script = str(Path(__file__).with_name("monitor_peer.py"))
    out = subprocess.run([args.peer_python, script, str(path)], capture_output=True, text=True)
    if out.returncode:  # report ours anyway; the peer's error says what to fix
        print(f"the peer failed (exit {out.returncode}):\n{out.stderr[-2000:]}", file=sys.stderr)
        return {}
    return json.loads(out.stdout)


def _table(flags: dict, timing: dict, names: list[str], args: argparse.Namespace) -> list[str]:
    u = args.undrifted
    lines = [
        f"Reference: {5 * args.per_task} T0 prompts (5 tasks); windows of {args.window}: {u} "
        "undrifted (fresh T0 prompts), a ramp of hh-rlhf first turns (5 % more per window), "
        "then hh-rlhf only. Thresholds: ours p < 0.01 (MMD permutation, 64-d projection) and "
        "label PSI > 0.25; Evidently's defaults.",
        "",
        "| detector | false alarms (undrifted) | ramp: first flagged | hh only | s / window |",
        "|---|---|---|---|---|",
    ]
    for name, f in flags.items():
        ramp = f[u:-1]
        first = next((names[u + i] for i, hit in enumerate(ramp) if hit), "never")
        lines.append(
            f"| {name} | {sum(f[:u])} of {u} | {first} | {'yes' if f[-1] else 'no'} "
            f"| {timing[name]:.3f} |"
        )
    return lines


if __name__ == "__main__":
    main()
