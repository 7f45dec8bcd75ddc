"""What issue 12's curation costs on t0-prompts: the dedup stage and the whole `dvc repro`.

    .venv/bin/python benchmarks/curation_cost.py [--n 2000] [--repeats 2] [--no-pipeline]
        [--warm-only] [--cache DIR]

The goals (issue 12): the dedup stage without semantic dedup within 1.5x the exact + near
stage before the issue, and the whole `dvc repro` with everything on within 1.3x.

- Input: an evenly spaced subsample of t0-prompts (`--n` records, 2,000 by default: the
  machine is 2 shared cores and the whole pipeline runs four times; semantic dedup needs
  1,000 survivors of near dedup to run, which 2,000 t0 records give).
- Dedup stage, in this process, alternated `--repeats` times (best CPU seconds kept):
  `before` = steps [exact, near], secrets off (the stage before issue 12); `+ secrets`;
  `+ quality` = steps [quality, exact, near] with secrets (the goal's "without semantic");
  `default` = [quality, exact, near, semantic] with every vector already in the embedding
  cache (the cache is shared with train and index, which a cold run fills).
- Whole pipeline, each stage as `dvc repro` runs it (`python -m pipeline <stage>` in a
  fresh process, in a scratch project with its own params.yaml, MLflow store and cache):
  `off` = dedup [exact, near] without secrets, train, evaluate, index (before issue 12);
  `on` = the default dedup, train, evaluate, index, and the anomaly stage. Each runs cold
  (empty embedding cache: what the first `dvc repro` costs) and then warm (outputs removed,
  the cache kept: what a re-run after a data change costs, at most). `--warm-only` skips
  the cold runs (encoding the sample twice more: most of the 40 minutes on a loaded
  machine) and gives each project a copy of the dedup rows' filled cache instead.
- `--cache DIR`: start the shared embedding cache from a copy of DIR (the cache an earlier
  run of the same `--n` left), so the untimed first dedup run need not encode the sample.

Appends a section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
T0 = REPO.parent / "shared" / "data" / "t0-prompts" / "t0-prompts.jsonl.gz"

from results import append_section, offline  # noqa: E402

BEFORE = ["dedup.steps=[exact,near]", "dedup.secrets.enabled=false"]
DEDUP_ROWS = {
    "before (exact, near; no secrets)": BEFORE,
    "+ secrets": ["dedup.steps=[exact,near]"],
    "+ quality (quality, exact, near; secrets)": ["dedup.steps=[quality,exact,near]"],
    "default (+ semantic, cached vectors)": [],
}
STAGES = {
    "off": ["dedup", "train", "evaluate", "index build"],
    "on": ["dedup", "train", "evaluate", "index build", "anomaly"],
}


def subsample(n: int, out: Path) -> int:
    """Every k-th t0-prompts line into `out` (all task families represented); the count."""
    with gzip.open(T0, "rt", encoding="utf-8") as fh:
        lines = fh.readlines()
    step = max(1, len(lines) // n)
    picked = lines[::step][:n]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(picked), encoding="utf-8")
    return len(picked)


def _cfg(raw: Path, db: Path, overrides: list[str]) -> Any:
    from pipeline.config import compose

    cfg = compose(["data=t0_prompts", f"tracking.uri=sqlite:///{db}", *overrides])
    cfg.data.path = str(raw.parent)
    return cfg


def dedup_rows(
    raw: Path, tmp: Path, repeats: int, seed: Path | None = None
) -> tuple[dict[str, float], dict[str, Any]]:
    """Best CPU seconds of the dedup stage per row, alternated; the last report per row.
    `seed`: a filled embedding cache to start from (copied)."""
    from pipeline.stages.dedup import run

    cache = tmp / "shared-cache"
    if seed is not None:
        shutil.copytree(seed, cache)
    seconds: dict[str, list[float]] = {row: [] for row in DEDUP_ROWS}
    reports: dict[str, Any] = {}
    # The first default run fills the embedding cache (not timed): the default rows then
    # read cached vectors, as the stage does once train or index has run.
    # One MLflow store for every run, as a project has: creating its tables is not the stage's.
    db, warm = tmp / "mlflow.db", tmp / "warm"
    run(_cfg(raw, db, [f"paths.embed_cache={cache}"]), warm)
    for repeat in range(repeats):
        for n, (row, overrides) in enumerate(DEDUP_ROWS.items()):
            root = tmp / f"dedup{n}-{repeat}"
            cfg = _cfg(raw, db, [*overrides, f"paths.embed_cache={cache}"])
            begin = time.process_time()
            reports[row] = run(cfg, root)
            seconds[row].append(time.process_time() - begin)
            print(f"dedup {row}: {seconds[row][-1]:.2f} s", file=sys.stderr, flush=True)
            shutil.rmtree(root)
    return {row: min(v) for row, v in seconds.items()}, reports


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pipeline_run(raw: Path, root: Path, mode: str) -> dict[str, tuple[float, float]]:
    """Each stage of `mode` in a fresh process under `root`: {stage: (wall s, CPU s)}."""
    from omegaconf import OmegaConf

    root.mkdir(parents=True, exist_ok=True)
    overrides = BEFORE if mode == "off" else []
    cfg = _cfg(raw, root / "mlflow.db", overrides)
    cfg.tracking.uri = "sqlite:///mlflow.db"  # relative, as params.yaml has it: cwd = root
    (root / "params.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
    env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
    env.pop("MLFLOW_TRACKING_URI")
    out = {}
    for stage in STAGES[mode]:
        wall, cpu = time.perf_counter(), _children_cpu()
        done = subprocess.run([sys.executable, "-m", "pipeline", *stage.split()], cwd=root,
                              env=env, capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"{mode} {stage} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
        out[stage] = (time.perf_counter() - wall, _children_cpu() - cpu)
        print(f"pipeline {mode} {stage}: {out[stage][0]:.1f} s wall", file=sys.stderr, flush=True)
    return out


def _clear_outputs(root: Path) -> None:
    """Every output of a run but the embedding cache (the warm re-run recomputes them)."""
    for rel in ("data/dedup", "data/index", "data/anomaly", "models", "reports", "mlflow.db",
                "mlruns", "mlartifacts"):  # fmt: skip
        path = root / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def pipeline_table(
    raw: Path, tmp: Path, warm_cache: Path | None = None
) -> tuple[list[str], dict[str, float]]:
    """Cold then warm whole-pipeline runs, off and on alternated; the table and the ratios.
    `warm_cache`: no cold runs; each project starts from a copy of this filled cache."""
    runs: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
    caches = ("warm",) if warm_cache else ("cold", "warm")
    for mode in ("off", "on"):
        if warm_cache:
            shutil.copytree(warm_cache, tmp / mode / "data" / "cache" / "embeddings")
        else:
            runs[mode, "cold"] = pipeline_run(raw, tmp / mode, mode)
    for mode in ("off", "on"):
        _clear_outputs(tmp / mode)
        runs[mode, "warm"] = pipeline_run(raw, tmp / mode, mode)
    names = STAGES["on"]
    lines = [
        "| run | " + " | ".join(names) + " | total wall s | total CPU s |",
        "|---|" + "---:|" * (len(names) + 2),
    ]
    ratios = {}
    for cache in caches:
        for mode in ("off", "on"):
            stages = runs[mode, cache]
            cells = [f"{stages[s][0]:.1f}" if s in stages else "-" for s in names]
            wall = sum(w for w, _ in stages.values())
            cpu = sum(c for _, c in stages.values())
            lines.append(
                f"| {mode}, {cache} | " + " | ".join(cells) + f" | {wall:.1f} | {cpu:.1f} |"
            )
        for i, label in ((0, "wall"), (1, "CPU")):
            off = sum(v[i] for v in runs["off", cache].values())
            on = sum(v[i] for v in runs["on", cache].values())
            ratios[f"{cache} {label}"] = on / off
    return lines, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="t0-prompts records (subsample)")
    parser.add_argument("--repeats", type=int, default=2, help="dedup runs per row")
    parser.add_argument("--no-pipeline", action="store_true", help="the dedup rows only")
    parser.add_argument("--no-append", action="store_true", help="print, do not append")
    parser.add_argument(
        "--warm-only",
        action="store_true",
        help="whole pipeline: warm runs only, from the dedup rows' cache",
    )
    parser.add_argument("--cache", type=Path, help="start from a copy of this embedding cache")
    args = parser.parse_args()
    offline()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    began = time.perf_counter()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        raw = tmp / "raw" / "t0.jsonl"
        count = subsample(args.n, raw)
        if args.cache is not None and not (args.cache / "vectors").is_dir():
            parser.error(f"--cache {args.cache}: not an embedding cache (no vectors/ in it)")
        best, reports = dedup_rows(raw, tmp, args.repeats, args.cache)
        base = best["before (exact, near; no secrets)"]
        lines = [
            f"t0-prompts, {count:,} records (every {55185 // args.n}th; subsampled to keep the "
            f"run under ten minutes on 2 shared cores), load average {load:.1f} at the start. "
            "Dedup stage in one process, best CPU seconds of "
            f"{args.repeats} alternated runs (read, validate, PII, the steps, DuckDB, Parquet, "
            "MLflow).",
            "",
            "| dedup stage | CPU s | x before | kept | filtered | semantic drops |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row, seconds in best.items():
            report = reports[row]
            lines.append(
                f"| {row} | {seconds:.2f} | {seconds / base:.2f}x | {report['kept']:,} | "
                f"{report.get('filtered', {}).get('total', 0)} | "
                f"{report['steps'].get('semantic', {}).get('dropped', 0)} |"
            )
        goal = best["+ quality (quality, exact, near; secrets)"] / base
        lines += ["", f"Goal, dedup without semantic within 1.5x: {goal:.2f}x, "
                  f"{'met' if goal <= 1.5 else 'NOT met'}."]  # fmt: skip
        if not args.no_pipeline:
            warm = tmp / "shared-cache" if args.warm_only else None
            table, ratios = pipeline_table(raw, tmp / "pipeline", warm)
            lines += [
                "",
                "Whole pipeline, each stage a fresh `python -m pipeline <stage>` process as "
                "`dvc repro` runs it (wall seconds per stage; CPU = user + sys of the children). "
                "off = before issue 12 (dedup [exact, near] without secrets, train, evaluate, "
                "index); on = the defaults and the anomaly stage. cold = empty embedding cache; "
                "warm = outputs removed, cache kept."
                + (
                    " Warm runs only (`--warm-only`): each project started from a copy of the "
                    "dedup rows' filled cache."
                    if args.warm_only
                    else ""
                ),
                "",
                *table,
                "",
                "Goal, whole `dvc repro` with everything on within 1.3x: "
                + ", ".join(
                    f"{k} {v:.2f}x ({'met' if v <= 1.3 else 'NOT met'})" for k, v in ratios.items()
                )
                + ".",
            ]
        lines += ["", f"{(time.perf_counter() - began) / 60:.0f} min in all."]
    print("\n".join(lines))
    if not args.no_append:
        append_section("Curation cost: issue 12's steps on t0-prompts",
                       "python benchmarks/curation_cost.py " + " ".join(sys.argv[1:]),
                       lines)  # fmt: skip


if __name__ == "__main__":
    main()
