"""Near-duplicate benchmark: our MinHash + LSH against datasketch and rensa, same shingles.

    .venv/bin/python benchmarks/dedup.py            # t0-prompts + a 1,000,000-record set
    .venv/bin/python benchmarks/dedup.py --quick    # 10k t0 records + a 100k set, no stage

Word 5-gram shingles of normalised prompt + "\\n" + response, 128 permutations, threshold
0.8, for every method. Each method runs in a fresh process so its peak RSS is its own.
Ground truth: exact Jaccard of shingle strings via complete prefix filtering on t0-prompts
(`dedup_truth.py`); the planted families on the synthetic set. Appends to RESULTS.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import pickle
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # runnable without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dedup_truth import Truth, cluster_roots, planted_set  # noqa: E402

from pipeline.dedup.normalize import normalize  # noqa: E402
from pipeline.text.tokens import shingle_tokens  # noqa: E402

T0 = REPO.parent / "shared" / "data" / "t0-prompts" / "t0-prompts.jsonl.gz"
RESULTS = REPO / "benchmarks" / "RESULTS.md"
NGRAM, NUM_PERM, BANDS, THRESHOLD, SEED = 5, 128, 16, 0.8, 1


def load_t0(limit: int | None) -> list[str]:
    texts = []
    with gzip.open(T0, "rt", encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            texts.append(normalize(record["prompt"] + "\n" + (record["response"] or "")))
    if limit and limit < len(texts):  # evenly spaced: every task family is represented
        texts = texts[:: len(texts) // limit][:limit]
    return texts


def word_shingles(text: str) -> list[str]:
    """The shingles every library gets: word 5-grams, or the whole text when shorter (words
    as the stage's: str.split(), each Chinese, Japanese, Thai... character on its own)."""
    tokens = shingle_tokens(text)
    if len(tokens) < NGRAM:
        return [" ".join(tokens)]
    return list({" ".join(tokens[i : i + NGRAM]) for i in range(len(tokens) - NGRAM + 1)})


def _rss_mb() -> float:
    """Peak RSS of this process. VmHWM, because ru_maxrss survives fork + exec on Linux and
    would report the parent's peak in a spawned child."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- runners: each runs in its own process on a pickled list of texts --------------------


def run_ours(texts: list[str], workers: int, repeats: int, pairs: bool) -> dict[str, Any]:
    from pipeline.dedup.minhash import NearDupSettings, near_duplicates, similar_pairs

    settings = NearDupSettings(
        ngram=NGRAM, num_perm=NUM_PERM, bands=BANDS, threshold=THRESHOLD, seed=SEED, workers=workers
    )
    start = time.perf_counter()
    near_duplicates(texts[:2000], settings)  # numba: load the on-disk cache or compile
    first_call = time.perf_counter() - start
    seconds, cpu = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        result = near_duplicates(texts, settings)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    out: dict[str, Any] = {"seconds": seconds, "cpu": cpu, "first_call_s": first_call}
    out["result"] = result
    if pairs:
        left, right, _ = similar_pairs(texts, settings)
        out["pairs"] = (left, right)
    return out


def run_datasketch(texts: list[str]) -> dict[str, Any]:
    from datasketch import MinHash, MinHashLSH

    start, cpu_start = time.perf_counter(), time.process_time()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    left, right = [], []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=NUM_PERM, seed=SEED)
        m.update_batch([s.encode("utf-8") for s in word_shingles(text)])
        for j in lsh.query(m):
            left.append(j)
            right.append(i)
        lsh.insert(i, m)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    pairs = (np.array(left), np.array(right))
    return {"seconds": [seconds], "cpu": [cpu], "pairs": pairs, "bands": lsh.b}


def run_rensa_loop(texts: list[str]) -> dict[str, Any]:
    from rensa import RMinHash, RMinHashLSH

    start, cpu_start = time.perf_counter(), time.process_time()
    lsh = RMinHashLSH(THRESHOLD, NUM_PERM, BANDS)
    left, right = [], []
    for i, text in enumerate(texts):
        m = RMinHash(NUM_PERM, SEED)
        m.update(word_shingles(text))
        for j in lsh.query(m):
            left.append(j)
            right.append(i)
        lsh.insert(i, m)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"seconds": [seconds], "cpu": [cpu], "pairs": (np.array(left), np.array(right))}


def run_rensa_bulk(texts: list[str]) -> dict[str, Any]:
    """rensa's fastest documented path: one digest matrix, one LSH pass, duplicate flags."""
    from rensa import RMinHash, RMinHashLSH

    start, cpu_start = time.perf_counter(), time.process_time()
    matrix = RMinHash.digest_matrix_from_token_sets(
        [word_shingles(t) for t in texts], NUM_PERM, SEED
    )
    lsh = RMinHashLSH(THRESHOLD, NUM_PERM, BANDS)
    flags = lsh.insert_matrix_and_query_duplicate_flags(matrix)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"seconds": [seconds], "cpu": [cpu], "flags": np.asarray(flags, bool)}


def run_stage(
    tmp: str, overrides: tuple[str, ...] = ("data=t0_prompts", f"data.path={T0}")
) -> dict[str, Any]:
    from pipeline.config import compose
    from pipeline.stages.dedup import run

    cfg = compose([*overrides, f"tracking.uri=sqlite:///{tmp}/mlflow.db"])
    start, cpu_start = time.perf_counter(), time.process_time()
    report = run(cfg, Path(tmp))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"seconds": [seconds], "cpu": [cpu], "report": report}


RUNNERS = {
    "ours": run_ours,
    "datasketch": run_datasketch,
    "rensa_loop": run_rensa_loop,
    "rensa_bulk": run_rensa_bulk,
}


def _child(kind: str, path: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    if kind == "stage":
        out = run_stage(path, **kwargs)
        out["rss_loaded_mb"] = 0.0
    else:
        with open(path, "rb") as fh:
            texts = pickle.load(fh)
        out = {"rss_loaded_mb": _rss_mb(), **RUNNERS[kind](texts, **kwargs)}
    out["rss_peak_mb"] = _rss_mb()
    return out


def in_child(kind: str, path: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Run one method in a fresh spawned process: its own peak RSS, no shared warm caches."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_child, kind, str(path), kwargs).result()


# ---- metrics ----------------------------------------------------------------------------


def median_rate(n: int, out: dict[str, Any]) -> float:
    return n / statistics.median(out["seconds"])


def ratio_cpu(n: int, ours: dict[str, Any], m: int, other: dict[str, Any]) -> str:
    mine = n / statistics.median(ours["cpu"])
    return f"{mine / (m / statistics.median(other['cpu'])):.1f}x"


def cpu_rate(n: int, out: dict[str, Any]) -> str:
    """Records per CPU-second (all threads): steadier than wall time on a shared machine."""
    return f"{n / statistics.median(out['cpu']):,.0f}"


def bench_t0(args: argparse.Namespace, tmp: Path, rows: list[list[str]], notes: list[str]) -> None:
    texts = load_t0(args.t0_limit)
    n = len(texts)
    path = tmp / "t0.pkl"
    path.write_bytes(pickle.dumps(texts))
    start = time.perf_counter()
    truth = Truth.exact(texts)
    notes.append(
        f"t0-prompts ({n:,} records): ground truth {len(truth.left):,} pairs at J >= "
        f"{THRESHOLD} ({np.count_nonzero(truth.records):,} records) by complete prefix "
        f"filtering over exact shingle strings in {time.perf_counter() - start:.1f} s."
    )

    def ours_row(label: str, out: dict[str, Any]) -> list[str]:
        sc = truth.score_result(out["result"], out["pairs"])
        return [label, f"{n:,}", f"{median_rate(n, out):,.0f}", cpu_rate(n, out), *sc,
                f"{out['rss_peak_mb']:,.0f}",
                f"first call {out['first_call_s']:.1f} s; runs "
                f"{', '.join(f'{s:.2f}' for s in out['seconds'])} s"]  # fmt: skip

    ours2 = in_child("ours", path, workers=2, repeats=args.repeats, pairs=True)
    rows.append(ours_row("ours, 2 threads", ours2))
    ours1 = in_child("ours", path, workers=1, repeats=args.repeats, pairs=True)
    rows.append(ours_row("ours, 1 thread", ours1))
    base = median_rate(n, ours2)

    def lib_row(label: str, out: dict[str, Any], sub: list[str]) -> list[str]:
        rate = median_rate(len(sub), out)
        sub_truth = truth if len(sub) == n else Truth.exact(sub)
        if "pairs" in out:
            sc = sub_truth.score_pairs(*out["pairs"])
        else:
            sc = ["-", "-", "-", *sub_truth.score_records(out["flags"])]
        return [label, f"{len(sub):,}", f"{rate:,.0f}", cpu_rate(len(sub), out), *sc,
                f"{out['rss_peak_mb']:,.0f}",
                f"ours/this = {base / rate:.1f}x wall, "
                f"{ratio_cpu(n, ours2, len(sub), out)} CPU"]  # fmt: skip

    sub = texts[:: max(1, n // args.datasketch_n)][: args.datasketch_n]
    sub_path = tmp / "t0_sub.pkl"
    sub_path.write_bytes(pickle.dumps(sub))
    ds = in_child("datasketch", sub_path)
    rows.append(lib_row(f"datasketch MinHash + MinHashLSH loop (b={ds['bands']})", ds, sub))
    rows.append(lib_row("rensa RMinHash + RMinHashLSH loop", in_child("rensa_loop", path), texts))
    bulk = in_child("rensa_bulk", path)
    rows.append(lib_row("rensa bulk: digest matrix + LSH duplicate flags", bulk, texts))
    if len(sub) < n:
        minutes = n / median_rate(len(sub), ds) / 60
        notes.append(f"datasketch ran on an evenly spaced {len(sub):,}-record subsample "
                     f"(the full set would take ~{minutes:.1f} min); its scores are against "
                     "exact truth on that subsample.")  # fmt: skip


def bench_planted(
    args: argparse.Namespace, tmp: Path, rows: list[list[str]], notes: list[str]
) -> None:
    from pipeline.dedup.shingles import shingle_sets

    n = args.big
    start = time.perf_counter()
    texts, family, base_of, target = planted_set(load_t0(None), n, seed=SEED)
    path = tmp / "planted.pkl"
    path.write_bytes(pickle.dumps(texts))
    gen_s = time.perf_counter() - start
    out = in_child("ours", path, workers=2, repeats=1, pairs=False)
    # Truth over 64-bit shingle hashes (equal to the string-based truth on t0-prompts, and
    # checked against Python string sets in tests/test_minhash.py): complete, not just the
    # planted pairs, since short spliced texts can repeat t0's boilerplate by chance.
    start = time.perf_counter()
    truth = Truth.hashed(*shingle_sets(texts, "word", NGRAM, SEED), THRESHOLD)
    truth_s = time.perf_counter() - start
    planted = np.count_nonzero(family[truth.left] == family[truth.right])
    rows.append(["ours, 2 threads, planted set", f"{n:,}", f"{n / out['seconds'][0]:,.0f}",
                 cpu_rate(n, out), *truth.score_result(out["result"], None),
                 f"{out['rss_peak_mb']:,.0f}",
                 f"{out['seconds'][0]:.1f} s; texts alone {out['rss_loaded_mb']:,.0f} MB RSS; "
                 f"first call {out['first_call_s']:.1f} s"])  # fmt: skip
    variants = np.flatnonzero(base_of >= 0)
    v_sims = truth.jaccard(variants, base_of[variants])
    root = cluster_roots(n, out["result"])
    found = root[variants] == root[base_of[variants]]
    by_target = []
    for goal in np.unique(target[variants]):
        pick = target[variants] == goal
        above = pick & (v_sims >= THRESHOLD)
        below = pick & (v_sims < THRESHOLD)
        by_target.append(
            f"{goal:.2f}: {np.count_nonzero(pick):,} planted, mean J {np.mean(v_sims[pick]):.3f}, "
            f"clustered {np.mean(found[above]) if above.any() else float('nan'):.4f} of "
            f"{np.count_nonzero(above):,} at J >= {THRESHOLD}, "
            f"{np.mean(found[below]) if below.any() else 0:.4f} of "
            f"{np.count_nonzero(below):,} below"
        )
    notes.append(
        f"Planted set: {n:,} records spliced from 8-40-word windows of t0-prompts texts "
        f"(lengths follow t0: 20-400 words), {len(variants):,} of them variants of a base with "
        f"k words replaced (5 apart) to plant a 5-gram Jaccard; generated in {gen_s:.0f} s in "
        f"a temp dir (pickle, deleted after). Truth: {len(truth.left):,} pairs at J >= "
        f"{THRESHOLD} by complete prefix filtering over the shingle hashes ({truth_s:.0f} s), "
        f"{planted:,} of them inside planted families, the rest chance repeats of t0 "
        f"boilerplate in short texts. Planted target -> measured J, share clustered with its "
        f"base: {'; '.join(by_target)}. (A variant below {THRESHOLD} can join its base "
        f"through another variant.)"
    )
    if not args.skip_stage:
        bench_planted_stage(tmp, texts, rows)
    slice_n = min(args.rensa_slice, n)
    sub = texts[:slice_n]
    del texts, truth
    slice_path = tmp / "planted_slice.pkl"
    slice_path.write_bytes(pickle.dumps(sub))
    rensa = in_child("rensa_loop", slice_path)
    rate = slice_n / rensa["seconds"][0]
    sub_truth = Truth.hashed(*shingle_sets(sub, "word", NGRAM, SEED), THRESHOLD)
    rows.append(["rensa loop, planted set, first records", f"{slice_n:,}", f"{rate:,.0f}",
                 cpu_rate(slice_n, rensa), *sub_truth.score_pairs(*rensa["pairs"]),
                 f"{rensa['rss_peak_mb']:,.0f}",
                 f"ours/this = {n / out['seconds'][0] / rate:.1f}x wall, "
                 f"{ratio_cpu(n, out, slice_n, rensa)} CPU; at this rate 1M takes "
                 f"{n / rate / 60:.1f} min"])  # fmt: skip


def bench_planted_stage(tmp: Path, texts: list[str], rows: list[list[str]]) -> None:
    """The whole dedup stage on the planted set, written as one JSONL file of prompts."""
    stage_dir = tmp / "planted_stage"
    raw = stage_dir / "raw"
    raw.mkdir(parents=True)
    with (raw / "planted.jsonl").open("w", encoding="utf-8") as fh:
        for i, text in enumerate(texts):
            fh.write(json.dumps({"id": f"p{i}", "prompt": text}) + "\n")
    size_mb = (raw / "planted.jsonl").stat().st_size / 2**20
    out = in_child("stage", stage_dir, overrides=("data=sample", f"data.path={raw}"))
    rows.append(stage_row(f"whole dedup stage, planted set ({size_mb:,.0f} MB JSONL)", out))
    shutil.rmtree(stage_dir, ignore_errors=True)


def stage_row(label: str, out: dict[str, Any]) -> list[str]:
    report = out["report"]
    n, seconds = report["input_records"], out["seconds"][0]
    steps = report.get("seconds", {})
    main_steps = ", ".join(
        f"{k} {steps[k]:.1f}" for k in ("read", "pii", "minhash", "stage", "near", "write")
        if k in steps
    )  # fmt: skip
    return [label, f"{n:,}", f"{n / seconds:,.0f}", cpu_rate(n, out), "-", "-", "-", "-", "-",
            f"{out['rss_peak_mb']:,.0f}",
            f"{seconds:.1f} s (s per step: {main_steps}); incl. read, validate, PII, exact, "
            f"near, DuckDB + Parquet + MLflow; near dups {report['near_duplicates']:,}, "
            f"exact {report['exact_duplicates']:,}"]  # fmt: skip


def bench_stage(tmp: Path, rows: list[list[str]], notes: list[str]) -> None:
    try:
        import pipeline.stages.dedup  # noqa: F401
    except ImportError as exc:
        notes.append(f"Whole stage skipped: {exc}")
        return
    stage_dir = tmp / "stage"
    stage_dir.mkdir()
    out = in_child("stage", stage_dir)
    rows.append(stage_row("whole dedup stage (pipeline.stages.dedup.run), t0-prompts", out))


HEADER = ["method", "records", "records/s", "records/CPU-s", "pair recall", "pair precision",
          "removed J>=t to survivor", "record recall", "record precision", "peak RSS MB",
          "notes"]  # fmt: skip


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def append_results(command: str, rows: list[list[str]], notes: list[str]) -> None:
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nEach script appends a dated section.\n")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = [
        f"\n## Near-duplicate detection ({now})\n",
        f"Machine: {os.cpu_count()} cores (shared with other jobs while measured), "
        f"Python {sys.version.split()[0]}. Command: `{command}`. Word {NGRAM}-gram shingles of "
        f"normalised prompt + response, {NUM_PERM} permutations, threshold {THRESHOLD}, "
        f"{BANDS} bands for ours and rensa. Records/s = median of runs, text in memory -> "
        "result. Every method's output is clustered by union-find (libraries: over their LSH "
        "candidate pairs, lowest index survives). Pair recall: true pairs (J >= 0.8) whose two "
        "records share a cluster. Pair precision: reported pairs (ours: verified pairs; "
        "libraries: unverified candidates) with true J >= 0.8. Removed J>=t: removed records "
        "whose true J to their cluster's survivor is >= 0.8 (union-find chains lower it). "
        "Record recall/precision: records with a true partner vs records put in a cluster. "
        "Peak RSS (VmHWM) is the method's own process, texts included.\n",
        markdown(rows),
        "",
        *[f"- {note}" for note in notes],
        "",
    ]
    with RESULTS.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(section))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no whole stage")
    parser.add_argument("--big", type=int, default=1_000_000, help="planted set size")
    parser.add_argument("--t0-limit", type=int, default=None, help="t0 records to use")
    parser.add_argument("--datasketch-n", type=int, default=10_000, help="datasketch subsample")
    parser.add_argument("--rensa-slice", type=int, default=50_000, help="rensa on the big set")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-stage", action="store_true")
    parser.add_argument("--no-append", action="store_true", help="print only")
    parser.add_argument("--note", action="append", default=[], help="extra note for RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.big, args.t0_limit, args.datasketch_n, args.rensa_slice = (
            100_000,
            10_000,
            2_000,
            10_000,
        )
        args.repeats, args.skip_stage = 2, True
    rows: list[list[str]] = []
    notes: list[str] = list(args.note)
    with tempfile.TemporaryDirectory(prefix="dedup-bench-") as tmp:
        bench_t0(args, Path(tmp), rows, notes)
        print(markdown(rows), flush=True)
        if not args.skip_big:
            bench_planted(args, Path(tmp), rows, notes)
            print(markdown(rows), flush=True)
        if not args.skip_stage:
            try:
                bench_stage(Path(tmp), rows, notes)
            except Exception as exc:  # the stage is another area's code: record, go on
                notes.append(f"Whole stage failed: {type(exc).__name__}: {exc}")
    print(markdown(rows))
    print("\n".join(f"- {n}" for n in notes))
    if not args.no_append:
        append_results("python benchmarks/dedup.py " + " ".join(sys.argv[1:]), rows, notes)


if __name__ == "__main__":
    main()
