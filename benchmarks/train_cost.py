"""What each conf/model choice costs on the bundled sample (`benchmarks/train.py --cost`).

Every model is trained as the train stage trains it (its split of the sample, the configured
epochs and early stopping, `trainer.threads=1`), each in a child process so its peak RSS is
its own. Models over sentence embeddings read a copy of the project's embed cache (warm, as
after `make run`); the cold cost, the ONNX export of MiniLM and the embedding of every
sample text into an empty cache, is timed on `--cold-texts` of them and extrapolated. The
finetune is timed over `--finetune-steps` training batches and one validation pass, then
extrapolated to an epoch and to the configured run. TF-IDF + LR is measured in the same run,
first and last, and every time is also given as a ratio to it.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EMBEDDING_MODELS = {"linear_probe", "hybrid"}  # read the embed cache; cold and warm runs
EMBED_CACHE = "data/cache/embeddings"  # conf/config.yaml paths.embed_cache
MAX_MINUTES = 59.0  # Lightning `max_time` per fit by default (`--max-minutes`)


def _peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sample(workdir: Path) -> Any:
    """The sample's kept records with the train stage's split; the working directory set."""
    import train

    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # MLflow and Lightning write relative to the working directory
    return train.sample_frame()


def measure_baseline(workdir: Path) -> dict[str, Any]:
    """TF-IDF + LR fitted on the sample's train rows and scored on its test rows."""
    import train

    frame = _sample(workdir)
    labels = sorted(frame["label"].unique().tolist())
    fit, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    cpu = time.process_time()
    f1, seconds = train.baseline_f1(fit, test, labels)
    return {
        "macro_f1": f1,
        "total_seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,  # includes the test prediction
        "peak_rss_mb": _peak_rss_mb(),
    }


def measure_cold(workdir: Path, n: int) -> dict[str, Any]:
    """Embedding into an empty cache: the first text (ONNX export, session), then `n` more;
    extrapolated to every text of the sample."""
    from pipeline.config import compose
    from pipeline.embed import EmbedSettings, embed

    frame = _sample(workdir)
    cfg = compose([])
    settings = EmbedSettings.from_cfg(cfg.embed)
    texts = frame["text"].sample(frac=1.0, random_state=0).tolist()  # lengths as they come
    cache = workdir / cfg.paths.embed_cache
    shutil.rmtree(cache, ignore_errors=True)
    clock, cpu = time.perf_counter(), time.process_time()
    embed(texts[:1], settings, cache_dir=cache)
    first, first_cpu = time.perf_counter() - clock, time.process_time() - cpu
    clock, cpu = time.perf_counter(), time.process_time()
    embed(texts[1 : n + 1], settings, cache_dir=cache)
    per_text = (time.perf_counter() - clock) / n
    per_text_cpu = (time.process_time() - cpu) / n
    rest = len(texts) - 1
    return {
        "texts": len(texts),
        "timed_texts": n + 1,
        "first_seconds": first,
        "seconds_per_text": per_text,
        "total_seconds": first + per_text * rest,
        "cpu_seconds": first_cpu + per_text_cpu * rest,
        "peak_rss_mb": _peak_rss_mb(),
    }


def measure_model(
    model: str, workdir: Path, finetune_steps: int, minutes: float = MAX_MINUTES
) -> dict[str, Any]:
    """One model trained as configured on the sample; times, epochs, RSS, test macro-F1."""
    import train

    from pipeline.config import compose

    frame = _sample(workdir)
    configured = int(compose([f"model={model}"]).trainer.max_epochs)
    bounded = model == "finetune"
    epochs = 1 if bounded else configured
    budget = train.Budget(0, 0, 0, {model: epochs}, {model: minutes})
    extra = (f"+trainer.limit_train_batches={finetune_steps}",) if bounded else ()
    records = train.ROOT / "data" / "dedup" / "records.parquet"
    cpu = time.process_time()  # every thread of this process: steadier than wall under load
    row = train.train_and_score(
        model, frame, "cost", budget, workdir, records, minutes * 60, extra, data="sample"
    )
    cpu = time.process_time() - cpu
    steps = row.pop("steps")
    out = {
        "macro_f1": row["macro_f1"],
        "epochs": row["epochs"],
        "time_capped": row["time_capped"],  # stopped by `max_time`, not by early stopping
        "configured_epochs": configured,
        "features_seconds": steps.get("features", 0.0),
        "fit_seconds": steps.get("fit", 0.0),
        "total_seconds": row["fit_seconds"],  # train_model's wall time: features, fit, MLflow
        "predict_seconds": row["predict_seconds"],
        "cpu_seconds": cpu,  # fit and test prediction
        "seconds_per_epoch": steps.get("fit", 0.0) / max(row["epochs"], 1),
        "peak_rss_mb": _peak_rss_mb(),
    }
    if bounded:
        out.update(_extrapolate(row, steps, finetune_steps, compose([f"model={model}"])))
    return out


def _extrapolate(row: dict, steps: dict, n: int, cfg: Any) -> dict[str, Any]:
    """A full epoch and the configured run from `n` timed batches and one validation pass."""
    train_rows = row["train_rows"]
    # train_samples_per_s counts a whole epoch's rows over the seconds the n batches took.
    batch_seconds = train_rows / row["train_samples_per_s"] / n
    batches = math.ceil(train_rows / int(cfg.model.batch_size))
    validation = max(steps["fit"] - batch_seconds * n, 0.0)  # val pass and Lightning set-up
    epoch = batch_seconds * batches + validation
    run = steps.get("features", 0.0) + epoch * int(cfg.trainer.max_epochs)
    return {
        "extrapolated": True,
        "timed_steps": n,
        "seconds_per_batch": batch_seconds,
        "batches_per_epoch": batches,
        "seconds_per_epoch": epoch,
        "run_seconds_max_epochs": run,
    }


def _child(args: list[str], log: Any) -> dict[str, Any]:
    """Run `train_cost.py --one ...` in a child process; its JSON line, load before/after."""
    load = os.getloadavg()[0]
    command = [sys.executable, str(HERE / "train_cost.py"), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        log(f"  {' '.join(args)} failed: {tail}")
        return {"error": tail[:160]}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["load"] = (load, os.getloadavg()[0])
    return row


def run_cost(
    models: list[str],
    workdir: Path,
    finetune_steps: int,
    cold_texts: int,
    jobs: int,
    minutes: float,
    log: Any,
) -> list[dict]:
    """The baseline first; every model and the cold embedding (`jobs` at a time, each in its
    own directory); the baseline last."""
    from concurrent.futures import ThreadPoolExecutor

    import train

    shutil.rmtree(workdir, ignore_errors=True)

    def child(model: str, tag: str, args: list[str]) -> dict:
        row = {"model": model, "run": tag, **_child(args, log)}
        log(f"  {row}")
        return row

    def one(model: str) -> dict:
        place = workdir / model
        if model == "embed-cold":
            args = ["--one", model, "--workdir", str(place), "--cold-texts", str(cold_texts)]
            return child("embedding", "cold", args)
        embeds = model in EMBEDDING_MODELS
        if embeds:  # the cache `make run` leaves: the sample's vectors and the ONNX model
            shutil.copytree(train.ROOT / EMBED_CACHE, place / EMBED_CACHE)
        args = ["--one", model, "--workdir", str(place), "--finetune-steps", str(finetune_steps)]
        args += ["--max-minutes", str(minutes)]
        return child(model, "warm" if embeds else "-", args)

    baseline = ["--one", "baseline", "--workdir", str(workdir / "baseline")]
    rows = [child("TF-IDF + LR", "first", baseline)]
    todo = [*models, *(["embed-cold"] if any(m in EMBEDDING_MODELS for m in models) else [])]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        rows += list(pool.map(one, todo))  # in `todo` order, whatever order they end in
    rows.append(child("TF-IDF + LR", "last", baseline))
    return rows


def render(rows: list[dict], finetune_steps: int) -> list[str]:
    """The RESULTS.md table: one row per run, times also as ratios to the baseline's mean."""
    base = [r for r in rows if r["model"] == "TF-IDF + LR" and "error" not in r]
    wall = sum(r["total_seconds"] for r in base) / len(base) if base else float("nan")
    cpu = sum(r["cpu_seconds"] for r in base) / len(base) if base else float("nan")
    lines = [
        "| model | embed cache | epochs run / max | s per epoch | features s | total fit s "
        "| x baseline | CPU s | x baseline CPU | peak RSS MB | test macro-F1 | load before/after |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['run']} | failed: {r['error']} |||||||||")
            continue
        load = "{:.1f} / {:.1f}".format(*r["load"])
        if r["model"] == "TF-IDF + LR":
            lines.append(
                f"| TF-IDF + LR ({r['run']}) | - | - | - | - | {r['total_seconds']:.1f} | "
                f"{r['total_seconds'] / wall:.2f}x | {r['cpu_seconds']:.1f} | "
                f"{r['cpu_seconds'] / cpu:.2f}x | {r['peak_rss_mb']:.0f} | {r['macro_f1']:.3f} "
                f"| {load} |"
            )
        elif r["model"] == "embedding":
            warm_rows = [w for w in rows if w.get("run") == "warm" and "error" not in w]
            added = ", ".join(
                f"{w['model']} ~{w['total_seconds'] + r['total_seconds']:.0f} s" for w in warm_rows
            )
            lines.append(
                f"| MiniLM embedding of the {r['texts']} sample texts (extrapolated from "
                f"{r['timed_texts']}; first text incl. ONNX export {r['first_seconds']:.0f} s) "
                f"| cold | - | - | ~{r['total_seconds']:.0f} | cold total: {added} | "
                f"~{r['total_seconds'] / wall:.0f}x | ~{r['cpu_seconds']:.0f} | "
                f"~{r['cpu_seconds'] / cpu:.0f}x | {r['peak_rss_mb']:.0f} | - | {load} |"
            )
        elif r.get("extrapolated"):
            n, run = r["timed_steps"], r["run_seconds_max_epochs"]
            # CPU of the training batches only, scaled to the configured run (val excluded).
            run_cpu = r["cpu_seconds"] / n * r["batches_per_epoch"] * r["configured_epochs"]
            lines.append(
                f"| {r['model']} (extrapolated from {n} batches) | - | "
                f"early stopping decides / {r['configured_epochs']} | "
                f"~{r['seconds_per_epoch']:.0f} ({r['batches_per_epoch']} batches x "
                f"{r['seconds_per_batch']:.2f} s + val) | {r['features_seconds']:.1f} | "
                f"~{run:.0f} at {r['configured_epochs']} epochs | ~{run / wall:.0f}x | "
                f"{r['cpu_seconds']:.0f} for {n} batches | "
                f"~{run_cpu / cpu:.0f}x | {r['peak_rss_mb']:.0f} | n/a ({n} steps only) | {load} |"
            )
        else:
            capped = " (time cap: early stopping not reached)" if r.get("time_capped") else ""
            lines.append(
                f"| {r['model']} | {r['run']} | {r['epochs']}{capped} / {r['configured_epochs']} | "
                f"{r['seconds_per_epoch']:.1f} | {r['features_seconds']:.1f} | "
                f"{r['total_seconds']:.1f} | {r['total_seconds'] / wall:.0f}x | "
                f"{r['cpu_seconds']:.0f} | {r['cpu_seconds'] / cpu:.0f}x | "
                f"{r['peak_rss_mb']:.0f} | {r['macro_f1']:.3f} | {load} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Child entry: `--one MODEL|baseline --workdir DIR`, prints one JSON line."""
    import argparse

    parser = argparse.ArgumentParser(description="one measurement of the --cost mode")
    parser.add_argument("--one", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--finetune-steps", type=int, default=20)
    parser.add_argument("--cold-texts", type=int, default=128)
    parser.add_argument("--max-minutes", type=float, default=MAX_MINUTES)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    workdir = Path(args.workdir)
    started = time.perf_counter()
    if args.one == "baseline":
        row = measure_baseline(workdir)
    elif args.one == "embed-cold":
        row = measure_cold(workdir, args.cold_texts)
    else:
        row = measure_model(args.one, workdir, args.finetune_steps, args.max_minutes)
    row["process_seconds"] = time.perf_counter() - started
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
