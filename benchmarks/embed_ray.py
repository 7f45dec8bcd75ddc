"""The index stage's embedding on Ray Data (`embed.engine=ray`) with 1 and 2 workers, and the
local engine beside it, on distinct t0-prompts prompts.

    .venv/bin/python benchmarks/embed_ray.py --n 2000 --rounds 2

Each run is a fresh spawned process embedding the same texts into an empty cache (the ONNX
export is made once and copied in), through `pipeline.embed.embed` as the index stage calls
it: the cache lookup, the encoding, the shards written by the driver. A Ray run starts its
own local cluster of `workers` CPUs first (timed apart as "cluster start"); the embed time
then includes the actors' start and the model's trip through the object store. The rounds
interleave the three configurations (rotating their order), so the machine's load falls
on all of them; the 1 -> 2 worker speed-up is taken within each round. Memory per worker:
the highest resident set of any Ray map worker (`ray::MapWorker...`) sampled every 0.2 s;
the driver's peak apart. Checks that every run's vectors match the local engine's.
Skips cleanly when ../shared/data is absent. Appends to RESULTS.md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # runnable without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parent))

from embed import T0, sample_prompts  # noqa: E402
from results import append_section, offline  # noqa: E402

CONFIGS = [("local", 0), ("ray, 1 worker", 1), ("ray, 2 workers", 2)]


def _peaks(stop: threading.Event, peak: dict[int, float], driver: list[float]) -> None:
    """Peak RSS (MiB) of this process (the driver) and of each Ray map worker under it.
    (Sampled: `ru_maxrss` would report the parent's peak, inherited across the spawn.)"""
    import psutil

    me = psutil.Process()
    while not stop.wait(0.2):
        driver[0] = max(driver[0], me.memory_info().rss / 2**20)
        for child in me.children(recursive=True):
            try:
                if "MapWorker" in child.name() or "MapWorker" in " ".join(child.cmdline()):
                    rss = child.memory_info().rss / 2**20
                    peak[child.pid] = max(peak.get(child.pid, 0.0), rss)
            except psutil.Error:  # gone between the listing and the reading
                continue


def _run(texts: list[str], workers: int, export: str, batch_texts: int) -> dict[str, Any]:
    """One configuration in this (fresh) process: seconds, vectors, peak memory."""
    import dataclasses

    offline()
    from pipeline.config import compose
    from pipeline.embed import EmbedSettings, embed
    from pipeline.ray_cluster import cluster

    cache = Path(tempfile.mkdtemp(prefix="embed-ray-bench-"))
    shutil.copytree(export, cache / "onnx")
    settings = EmbedSettings.from_cfg(compose().embed)
    out: dict[str, Any] = {"startup": 0.0}
    peaks: dict[int, float] = {}
    driver = [0.0]
    stop = threading.Event()
    sampler = threading.Thread(target=_peaks, args=(stop, peaks, driver), daemon=True)
    sampler.start()
    try:
        if workers == 0:
            start = time.perf_counter()
            result = embed(texts, settings, cache)
            out["seconds"] = time.perf_counter() - start
        else:
            ray_settings = dataclasses.replace(settings.ray, workers=workers,
                                               batch_texts=batch_texts)  # fmt: skip
            settings = dataclasses.replace(settings, engine="ray", ray=ray_settings)
            start = time.perf_counter()
            with cluster(None, ray_settings.cpus, ray_settings.object_store_memory, "embed.engine"):
                out["startup"] = time.perf_counter() - start
                begin = time.perf_counter()
                result = embed(texts, settings, cache)  # joins the cluster started above
                out["seconds"] = time.perf_counter() - begin
        assert result.encoded == len(texts), result
        out["vectors"] = result.vectors
    finally:
        stop.set()
        sampler.join()
        out["worker_peaks"] = sorted(peaks.values())
        out["driver_peak"] = driver[0]
        shutil.rmtree(cache, ignore_errors=True)
    return out


def in_child(texts: list[str], workers: int, export: str, batch_texts: int) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_run, texts, workers, export, batch_texts).result()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="distinct prompts to embed")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument(
        "--batch-texts",
        type=int,
        default=None,
        help="embed.ray.batch_texts (default: the config's)",
    )
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args()
    if not T0.exists():
        print(f"skipped: {T0} is absent (the public datasets live in ../shared/data)")
        return 0
    offline()
    from pipeline.config import compose
    from pipeline.embed.onnx_export import ensure_onnx

    texts = sample_prompts(args.n)
    batch_texts = args.batch_texts or int(compose().embed.ray.batch_texts)
    work = Path(tempfile.mkdtemp(prefix="embed-ray-export-"))
    export = ensure_onnx("all-MiniLM-L6-v2", work).parent
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in CONFIGS}
    speedups: list[float] = []
    loads: list[float] = []
    began = time.perf_counter()
    for r in range(args.rounds):
        order = CONFIGS[r % 3 :] + CONFIGS[: r % 3]
        for label, workers in order:
            loads.append(os.getloadavg()[0])
            out = in_child(texts, workers, str(export), batch_texts)
            runs[label].append(out)
            print(f"round {r + 1} {label}: {out['seconds']:.1f} s "
                  f"(+{out['startup']:.1f} s cluster start), load {loads[-1]:.1f}",
                  flush=True)  # fmt: skip
        one, two = runs["ray, 1 worker"][-1], runs["ray, 2 workers"][-1]
        speedups.append(one["seconds"] / two["seconds"])
    load_after = os.getloadavg()
    shutil.rmtree(work, ignore_errors=True)

    reference = runs["local"][0]["vectors"]
    worst = max(float(np.abs(o["vectors"] - reference).max()) for rs in runs.values() for o in rs)
    local_median = statistics.median(o["seconds"] for o in runs["local"])
    rows = ["| engine | embed s (median) | texts/s | x local | cluster start s | "
            "peak RSS per worker MiB | driver peak RSS MiB |",
            "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for label, _ in CONFIGS:
        done = runs[label]
        seconds = statistics.median(o["seconds"] for o in done)
        startup = statistics.median(o["startup"] for o in done)
        peaks = [max(o["worker_peaks"]) for o in done if o["worker_peaks"]]
        worker = f"{max(peaks):.0f}" if peaks else "-"
        driver = max(o["driver_peak"] for o in done)
        rows.append(f"| {label} | {seconds:.1f} | {len(texts) / seconds:.1f} | "
                    f"{local_median / seconds:.2f}x | {startup:.1f} | {worker} | "
                    f"{driver:.0f} |")  # fmt: skip
    speedup = statistics.median(speedups)
    per_round = ", ".join(f"{s:.2f}x" for s in speedups)
    lines = [
        f"{len(texts):,} distinct t0-prompts prompts (seed 0), all-MiniLM-L6-v2 ONNX (float32), "
        f"`embed.batch_size` 64, `embed.ray.batch_texts` {batch_texts}, one ORT thread per worker; "
        f"local = one process with ORT on all {os.cpu_count()} cores. {args.rounds} rounds, "
        "the three configurations interleaved (order rotated each round), each a fresh "
        "process and an empty cache. embed s = `pipeline.embed.embed` (lookup, encoding, "
        "cache shards written by the driver), after the cluster start (its own column).",
        "",
        *rows,
        "",
        f"Speed-up from 1 to 2 Ray workers, within each round: {per_round} (median "
        f"{speedup:.2f}x; goal, as for dedup, >= 1.7x: {'met' if speedup >= 1.7 else 'not met'}). "
        f"Largest difference of any vector from the local engine's: {worst:.1e}. "
        f"Load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; at the start "
        f"of each run {min(loads):.1f} to {max(loads):.1f} (other jobs share the "
        f"{os.cpu_count()} cores). {time.perf_counter() - began:.0f} s in all.",
    ]
    print("\n".join(lines))
    if not args.no_append:
        append_section("Index embedding on Ray Data, 1 vs 2 workers",
                       f"python benchmarks/embed_ray.py --n {args.n} --rounds {args.rounds}"
                       + (f" --batch-texts {args.batch_texts}" if args.batch_texts else ""),
                       lines)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
