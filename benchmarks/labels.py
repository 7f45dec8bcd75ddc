"""Label issues: precision and recall of what `pipeline labels issues` flags, on the bundled
sample's planted wrong labels and on t0-prompts with labels flipped at random, beside the
baseline measured in the same run (rank by low self-confidence of the same probabilities,
without cleanlab), for each feature set.

    python benchmarks/labels.py [--t0-records 10000] [--rates 0.01 0.02 0.05]
                                [--cache data/cache/embeddings] [--no-append]

Sample: the real dedup stage over data/raw in a temporary directory; the truth comes from
replaying the generator (pipeline/sample/generate.py plants LABEL_NOISE = 2%: a record's
shown label differs from the one its text was made for; follow-up turns inherit their
session's shown label, copies their source's). t0-prompts: a seeded random subsample of
--t0-records, labels flipped to another class at each rate; t0's own label noise counts
against every method alike. Cost: the cross-validation is seconds of CPU; encoding is what
takes time when the t0 prompts are not in the embed cache yet (a `make run` on t0 fills it):
the recorded run (--t0-records 4000, six sessions sharing 2 cores) encoded 4000 cold prompts
in 19 min, so run it with a warm cache or fewer records. Figures: the
flagged set of cleanlab (size k) and the baseline's top k; and both rankings' top N, N =
the number of wrong labels. Appends a section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
T0 = REPO.parent / "shared" / "data" / "t0-prompts" / "t0-prompts.jsonl.gz"

from results import append_section  # noqa: E402

from pipeline.embed.api import EmbedSettings, embed  # noqa: E402
from pipeline.labels.issues import (  # noqa: E402
    LabelSettings,
    cleanlab_issues,
    cross_val_probs,
    self_confidence,
)


def planted_wrong_labels(seed: int = 0, n_records: int = 3000) -> dict[str, str]:
    """Record id -> the label its text was made for, for every record shown another label."""
    import importlib

    gen = importlib.import_module("pipeline.sample.generate")  # the module, not the function

    true_label: dict[str, str] = {}
    original = gen._Builder.base_record

    def recording(self, file, label, prompt, response):  # type: ignore[no-untyped-def]
        rec = original(self, file, label, prompt, response)
        true_label[rec["id"]] = label  # a follow-up's `label` is its session's true one
        return rec

    gen._Builder.base_record = recording
    try:
        sample = gen.generate(seed=seed, n_records=n_records)
    finally:
        gen._Builder.base_record = original
    for planted in sample.truth["exact_duplicates"] + sample.truth["near_duplicates"]:
        true_label[planted["id"]] = true_label[planted["duplicate_of"]]
    shown = {r["id"]: r["label"] for recs in sample.files.values() for r in recs}
    return {i: true_label[i] for i, label in shown.items() if label != true_label[i]}


def sample_records(cache: Path) -> tuple[list[str], list[str], list[str]]:
    """(ids, texts, labels) of the sample's kept records, from the real dedup stage."""
    import pyarrow.parquet as pq

    from pipeline.config import compose
    from pipeline.stages.dedup import run

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose([f"tracking.uri=sqlite:///{tmp}/mlflow.db"])
        cfg.data.path = str(REPO / "data" / "raw")
        run(cfg, Path(tmp))
        rows = pq.read_table(Path(tmp) / cfg.paths.records, columns=["id", "prompt", "label"])
    rows = [r for r in rows.to_pylist() if r["label"]]
    return [r["id"] for r in rows], [r["prompt"] for r in rows], [r["label"] for r in rows]


def t0_records(path: Path, n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """A seeded random subsample of t0-prompts: (ids, prompts, task labels)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    rows = random.Random(seed).sample(rows, min(n, len(rows)))
    return [r["id"] for r in rows], [r["prompt"] for r in rows], [r["task"] for r in rows]


def flip(labels: Sequence[str], rate: float, seed: int) -> tuple[list[str], set[int]]:
    """Labels with round(rate * n) of them changed to another class chosen at random."""
    rng = random.Random(seed)
    classes = sorted(set(labels))
    chosen = set(rng.sample(range(len(labels)), round(rate * len(labels))))
    out = list(labels)
    for i in chosen:
        out[i] = rng.choice([c for c in classes if c != labels[i]])
    return out, chosen


def pr(picked: Sequence[int], truth: set[int]) -> tuple[float, float]:
    hits = len(truth & set(picked))
    return hits / max(len(picked), 1), hits / max(len(truth), 1)


def measure(
    vectors: np.ndarray, texts: list[str], given: list[str], truth: set[int], features: str
) -> dict[str, float]:
    """cleanlab's flagged set and the self-confidence baseline, at k and at N = |truth|."""
    settings = LabelSettings(features=features)
    begin = time.perf_counter()
    probs = cross_val_probs(vectors, texts, given, settings)
    cv_seconds = time.perf_counter() - begin
    begin = time.perf_counter()
    flagged = cleanlab_issues(probs, settings)
    cl_seconds = time.perf_counter() - begin
    baseline = np.argsort(self_confidence(probs), kind="stable")  # least confident first
    rest = np.setdiff1d(baseline, flagged, assume_unique=True)
    ranked = np.concatenate([flagged, baseline[np.isin(baseline, rest)]])
    k, n = len(flagged), len(truth)
    out = {"k": k, "n": n, "cv_s": cv_seconds, "cleanlab_s": cl_seconds}
    out["cl_p_k"], out["cl_r_k"] = pr(flagged.tolist(), truth)
    out["base_p_k"], out["base_r_k"] = pr(baseline[:k].tolist(), truth)
    out["cl_p_n"], out["cl_r_n"] = pr(ranked[:n].tolist(), truth)
    out["base_p_n"], out["base_r_n"] = pr(baseline[:n].tolist(), truth)
    return out


def row(name: str, features: str, m: dict[str, float]) -> str:
    return (
        f"| {name} | {features} | {m['n']} | {m['k']} | {m['cl_p_k']:.2f} / {m['cl_r_k']:.2f} "
        f"| {m['base_p_k']:.2f} / {m['base_r_k']:.2f} | {m['cl_p_n']:.2f} / {m['cl_r_n']:.2f} "
        f"| {m['base_p_n']:.2f} / {m['base_r_n']:.2f} | {m['cv_s']:.1f} + {m['cleanlab_s']:.1f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t0", type=Path, default=T0)
    parser.add_argument("--t0-records", type=int, default=10_000)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.01, 0.02, 0.05])
    parser.add_argument("--cache", type=Path, default=REPO / "data" / "cache" / "embeddings")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    settings = EmbedSettings(backend="onnx")  # conf/embed/minilm.yaml: the cache train shares
    lines = [
        "| data | features | wrong (N) | flagged (k) | cleanlab P / R at k | baseline P / R "
        "at k | cleanlab P / R at N | baseline P / R at N | seconds (CV + cleanlab) |",
        "| --- | --- | ---: | ---: | --- | --- | --- | --- | --- |",
    ]
    wrong = planted_wrong_labels()
    ids, texts, given = sample_records(args.cache)
    truth = {i for i, record_id in enumerate(ids) if record_id in wrong}
    vectors = embed(texts, settings, args.cache).vectors
    for features in ("embed", "embed+tfidf"):
        lines.append(row("sample (planted)", features, measure(vectors, texts, given, truth,
                                                               features)))  # fmt: skip
        print(lines[-1], flush=True)
    if args.t0.exists():
        _, texts, labels = t0_records(args.t0, args.t0_records, args.seed)
        begin = time.perf_counter()
        result = embed(texts, settings, args.cache)
        print(f"t0: {len(texts)} embedded in {time.perf_counter() - begin:.0f} s "
              f"({result.cached} from the cache)", flush=True)  # fmt: skip
        for rate in args.rates:
            flipped, truth = flip(labels, rate, args.seed)
            features_list = ("embed", "embed+tfidf") if rate == 0.02 else ("embed",)
            for features in features_list:
                m = measure(result.vectors, texts, flipped, truth, features)
                lines.append(row(f"t0 {len(texts)}, {rate:.0%} flipped", features, m))
                print(lines[-1], flush=True)
    else:
        lines.append(f"(t0-prompts absent at {args.t0}: skipped)")
    lines += [
        "",
        "Sample: the 2,898 kept records of data/raw after the real dedup stage; a planted "
        "wrong label is one the generator showed instead of the one its text was made for. "
        "cleanlab = find_label_issues(filter_by=prune_by_noise_rate) on 5-fold out-of-sample "
        "probabilities of a logistic regression (C=4) over the cached MiniLM vectors (+ TF-IDF "
        "word 1-2 grams fitted on the training folds); baseline = the same probabilities "
        "ranked by the given label's probability (self-confidence), no cleanlab. At k: "
        "cleanlab's flagged set vs the baseline's k least confident. At N: cleanlab's set "
        "ranked first, then the rest by self-confidence, vs the baseline's N least confident.",
    ]
    if not args.no_append:
        command = "python benchmarks/labels.py " + " ".join(argv or sys.argv[1:])
        append_section("Label issues (cleanlab) vs self-confidence ranking", command.strip(),
                       lines)  # fmt: skip
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
