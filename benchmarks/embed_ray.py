"""The index stage's embedding on Ray Data (`embed.engine=ray`) with 1 and 2 workers, and the
local engine beside it, on distinct t0-prompts prompts.

    .venv/bin/python benchmarks/embed_ray.py --n 500 1000 2000 --rounds 2

Each run is a fresh spawned process embedding the same texts into an empty cache (the ONNX
export is made once and copied in), through `pipeline.embed.embed` as the index stage calls
it: the cache lookup, the encoding, the shards written by the driver. A Ray run starts its
own local cluster of `workers` CPUs first (timed apart as "cluster start"); the embed time
then includes the actors' start and the model's trip through the object store. The rounds
interleave the three configurations (rotating their order), so the machine's load falls
on all of them; the 1 -> 2 worker speed-up is taken within each round. Memory per worker:
the highest resident set of any Ray map worker (`ray::MapWorker...`) sampled every 0.2 s;
the driver's peak apart. Several sizes (`--n 500 1000 2000`) make one section, a row per
size and configuration, to show whether a worker's memory stays flat as n grows.
Where a Ray run's time goes: the benchmark wraps `ray_embed.encode_on_ray` (the real one,
called as `embed` calls it) to time its start (the driver's cache lookup before it), the
first batch back (cluster join, export read and put, actors' start and model load, the
first block) and the steady-state rate of the later batches, whose 1 -> 2 worker ratio is
the encoding's own; and it samples each worker's CPU share and the driver's CPU time.
Ctrl-C stops the run and reports the sizes already done. Checks that every run's vectors
match the local engine's. Skips cleanly when ../shared/data is absent. Appends to RESULTS.md.
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


def _peaks(
    stop: threading.Event,
    peak: dict[int, float],
    driver: list[float],
    cpu: dict[int, tuple[float, float]],
) -> None:
    """Peak RSS (MiB) of this process (the driver) and of each Ray map worker under it, and
    each worker's CPU seconds and age when last seen (`cpu`). (Sampled: `ru_maxrss` would
    report the parent's peak, inherited across the spawn.)"""
    import psutil

    me = psutil.Process()
    while not stop.wait(0.2):
        driver[0] = max(driver[0], me.memory_info().rss / 2**20)
        for child in me.children(recursive=True):
            try:
                if "MapWorker" in child.name() or "MapWorker" in " ".join(child.cmdline()):
                    rss = child.memory_info().rss / 2**20
                    peak[child.pid] = max(peak.get(child.pid, 0.0), rss)
                    times = child.cpu_times()
                    cpu[child.pid] = (times.user + times.system, time.time() - child.create_time())
            except psutil.Error:  # gone between the listing and the reading
                continue


def _timed(out: dict[str, Any], start: list[float]) -> None:
    """Wrap `ray_embed.encode_on_ray` (looked up by `embed` at call time) to record, in
    seconds from `start[0]`: its call and each batch's arrival on the driver."""
    from pipeline.embed import ray_embed

    real = ray_embed.encode_on_ray

    def encode_on_ray(texts: Any, settings: Any, cache_dir: Any, on_batch: Any) -> Any:
        out["called"] = time.perf_counter() - start[0]
        arrivals: list[tuple[float, int]] = out.setdefault("arrivals", [])

        def timed(positions: np.ndarray, vectors: np.ndarray) -> None:
            arrivals.append((time.perf_counter() - start[0], len(positions)))
            on_batch(positions, vectors)

        result = real(texts, settings, cache_dir, timed)
        out["returned"] = time.perf_counter() - start[0]
        return result

    ray_embed.encode_on_ray = encode_on_ray


def _run(texts: list[str], workers: int, export: str, batch_texts: int) -> dict[str, Any]:
    """One configuration in this (fresh) process: seconds, vectors, peak memory, and for
    Ray the phases (`_timed`)."""
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
    cpu: dict[int, tuple[float, float]] = {}
    driver = [0.0]
    stop = threading.Event()
    sampler = threading.Thread(target=_peaks, args=(stop, peaks, driver, cpu), daemon=True)
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
            begin = [time.perf_counter()]
            _timed(out, begin)
            with cluster(None, ray_settings.cpus, ray_settings.object_store_memory, "embed.engine"):
                out["startup"] = time.perf_counter() - begin[0]
                begin[0], cpu_before = time.perf_counter(), time.process_time()
                result = embed(texts, settings, cache)  # joins the cluster started above
                out["seconds"] = time.perf_counter() - begin[0]
                out["driver_cpu"] = time.process_time() - cpu_before
        assert result.encoded == len(texts), result
        out["vectors"] = result.vectors
    finally:
        stop.set()
        sampler.join()
        out["worker_peaks"] = sorted(peaks.values())
        # A worker's CPU seconds over its life: 1.0 is a core of its own the whole time.
        out["worker_cpu_share"] = [used / age for used, age in cpu.values() if age > 0]
        out["driver_peak"] = driver[0]
        shutil.rmtree(cache, ignore_errors=True)
    return out


def in_child(texts: list[str], workers: int, export: str, batch_texts: int) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_run, texts, workers, export, batch_texts).result()


def _phases(out: dict[str, Any], n: int) -> dict[str, float]:
    """A Ray run's phases (`_timed`): before the first batch came back, the steady rate of
    the later batches (texts/s), the driver's CPU seconds, the workers' CPU share."""
    arrivals = out.get("arrivals") or []
    shares = out.get("worker_cpu_share") or [float("nan")]
    if not arrivals:
        return {"first": float("nan"), "steady": float("nan"), "driver_cpu": float("nan"),
                "worker_cpu": float("nan")}  # fmt: skip
    first_at, first_count = arrivals[0]
    span = arrivals[-1][0] - first_at
    later = n - first_count
    return {"first": first_at - out["called"],
            "steady": later / span if span > 0 and later else float("nan"),
            "driver_cpu": out["driver_cpu"], "worker_cpu": statistics.median(shares)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[2000],
                        help="distinct prompts to embed; several sizes, one row each")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per size")
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

    sizes = sorted(set(args.n))
    batch_texts = args.batch_texts or int(compose().embed.ray.batch_texts)
    work = Path(tempfile.mkdtemp(prefix="embed-ray-export-"))
    export = ensure_onnx("all-MiniLM-L6-v2", work).parent
    load_before = os.getloadavg()
    loads: list[float] = []
    began = time.perf_counter()
    rows = ["| n | engine | embed s (median) | texts/s | x local | cluster start s | "
            "before 1st batch s | steady texts/s | driver CPU s | worker CPU share | "
            "peak RSS per worker MiB | driver peak RSS MiB |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    notes: list[str] = []
    worst = 0.0
    stopped: int | None = None
    for n in sizes:
        texts = sample_prompts(n)
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in CONFIGS}
        speedups: list[float] = []
        steady: list[float] = []
        try:
            for r in range(args.rounds):
                order = CONFIGS[r % 3 :] + CONFIGS[: r % 3]
                for label, workers in order:
                    loads.append(os.getloadavg()[0])
                    out = in_child(texts, workers, str(export), batch_texts)
                    runs[label].append(out)
                    phases = _phases(out, n) if workers else {}
                    print(f"n={n} round {r + 1} {label}: {out['seconds']:.1f} s "
                          f"(+{out['startup']:.1f} s cluster start), load {loads[-1]:.1f}; "
                          + ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
                          + f"; worker peaks {[round(p) for p in out['worker_peaks']]} MiB",
                          flush=True)  # fmt: skip
                one, two = runs["ray, 1 worker"][-1], runs["ray, 2 workers"][-1]
                speedups.append(one["seconds"] / two["seconds"])
                steady.append(_phases(two, n)["steady"] / _phases(one, n)["steady"])
        except KeyboardInterrupt:  # Ctrl-C (a CPU window closing): report the sizes done
            stopped = n
            break
        reference = runs["local"][0]["vectors"]
        worst = max(worst, *(float(np.abs(o["vectors"] - reference).max())
                             for done in runs.values() for o in done))  # fmt: skip
        local_median = statistics.median(o["seconds"] for o in runs["local"])
        for label, workers in CONFIGS:
            done = runs[label]
            seconds = statistics.median(o["seconds"] for o in done)
            startup = statistics.median(o["startup"] for o in done)
            peaks = [max(o["worker_peaks"]) for o in done if o["worker_peaks"]]
            worker = f"{max(peaks):.0f}" if peaks else "-"
            driver = max(o["driver_peak"] for o in done)
            if workers:
                phases = [_phases(o, n) for o in done]
                first = f"{statistics.median(p['first'] for p in phases):.1f}"
                rate = f"{statistics.median(p['steady'] for p in phases):.1f}"
                spent = f"{statistics.median(p['driver_cpu'] for p in phases):.1f}"
                share = f"{statistics.median(p['worker_cpu'] for p in phases):.2f}"
            else:
                first = rate = spent = share = "-"
            rows.append(f"| {n:,} | {label} | {seconds:.1f} | {n / seconds:.1f} | "
                        f"{local_median / seconds:.2f}x | {startup:.1f} | {first} | {rate} | "
                        f"{spent} | {share} | {worker} | {driver:.0f} |")  # fmt: skip
        speedup = statistics.median(speedups)
        per_round = ", ".join(f"{s:.2f}x" for s in speedups)
        notes.append(
            f"n={n:,}: 1 -> 2 workers, within each round, {per_round} "
            f"(median {speedup:.2f}x, goal >= 1.7x {'met' if speedup >= 1.7 else 'not met'}); "
            f"steady rate after the first batch {', '.join(f'{s:.2f}x' for s in steady)} "
            f"(median {statistics.median(steady):.2f}x)."
        )
    load_after = os.getloadavg()
    shutil.rmtree(work, ignore_errors=True)
    if not notes:
        print("stopped before any size was measured: nothing to report")
        return 1
    if stopped is not None:
        left = ", ".join(f"{m:,}" for m in sizes[len(notes) :])
        notes.append(f"Stopped (Ctrl-C) during n={stopped:,}: {left} not measured.")

    lines = [
        f"Distinct t0-prompts prompts (seed 0), all-MiniLM-L6-v2 ONNX (float32), "
        f"`embed.batch_size` 64, `embed.ray.batch_texts` {batch_texts}, one ORT thread per worker; "
        f"local = one process with ORT on all {os.cpu_count()} cores. {args.rounds} rounds per "
        "size, the three configurations interleaved (order rotated each round), each a fresh "
        "process and an empty cache. embed s = `pipeline.embed.embed` (lookup, encoding, "
        "cache shards written by the driver), after the cluster start (its own column). "
        "Before 1st batch = from `encode_on_ray`'s call to the first vectors back on the driver "
        "(cluster join, export read and put, actors' start and model load, the first block: "
        "the longest texts); steady = texts/s over the later batches; driver CPU = the "
        "driver process's CPU seconds during `embed` (Ray Data's executor, the cache); worker "
        "CPU share = a map worker's CPU seconds over its life (1.00: a core to itself).",
        "",
        *rows,
        "",
        *notes,
        "",
        f"Largest difference of any vector from the local engine's: {worst:.1e}. "
        f"Load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; at the start "
        f"of each run {min(loads):.1f} to {max(loads):.1f} (other jobs share the "
        f"{os.cpu_count()} cores). {time.perf_counter() - began:.0f} s in all.",
    ]
    print("\n".join(lines))
    if not args.no_append:
        append_section("Index embedding on Ray Data, 1 vs 2 workers, by size",
                       f"python benchmarks/embed_ray.py --n {' '.join(map(str, sizes))} "
                       f"--rounds {args.rounds}"
                       + (f" --batch-texts {args.batch_texts}" if args.batch_texts else ""),
                       lines)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
