"""Benchmark: anomaly scores find hh-rlhf turns mixed into t0-prompts. Runs in ~10 min on
2 shared cores once the embeddings are cached in --workdir (t0 subsampled to 4,000; the
first run embeds them: 30 min on a loaded machine, a few on an idle one).

    .venv/bin/python benchmarks/anomaly.py                  # 4,000 t0 + 2% hh-rlhf
    .venv/bin/python benchmarks/anomaly.py --t0 10000       # bigger, if the machine is idle

Data: a seeded sample of ../shared/data/t0-prompts (inliers) and the first human turn of
hh-rlhf harmless-base conversations (outliers, `--share` of the mix). The text embedded is
the prompt (`embed.text` of the default config) with the stage's encoder. Scores, in the
same run on the same vectors:
  autoencoder   the anomaly stage's model and config (conf/anomaly/autoencoder.yaml),
                one fit per seed: reconstruction error; then other bottleneck widths
  k-means       the obvious baseline: distance to the nearest of k centroids (FAISS
                k-means), for several k
Reported: ROC AUC (outlier vs inlier) and precision at N (N = the number of outliers).
Then the anomaly stage's top-20 strangest records of the bundled sample (data/dedup,
from `dvc repro`) are printed to be read. Appends a section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
from results import offline

offline()

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = ROOT.parent / "shared" / "data"
T0 = DATA / "t0-prompts" / "t0-prompts.jsonl.gz"
HH = DATA / "hh-rlhf" / "harmless-base-test.jsonl.gz"
KS = (8, 32, 128)


def log(message: str) -> None:
    print(f"[anomaly bench] {message}", file=sys.stderr, flush=True)


def t0_prompts(n: int, seed: int) -> list[str]:
    """A seeded sample of n t0 prompts."""
    with gzip.open(T0, "rt", encoding="utf-8") as fh:
        prompts = [json.loads(line)["prompt"] for line in fh]
    chosen = np.random.default_rng(seed).choice(len(prompts), size=n, replace=False)
    return [prompts[i] for i in sorted(chosen)]


def hh_turns(n: int, seed: int) -> list[str]:
    """The first human turn of n seeded hh-rlhf conversations."""
    turns = []
    with gzip.open(HH, "rt", encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line)["chosen"]
            first = text.split("\n\nHuman: ", 1)[-1].split("\n\nAssistant:", 1)[0].strip()
            if first:
                turns.append(first)
    turns = sorted(set(turns))
    chosen = np.random.default_rng(seed).choice(len(turns), size=n, replace=False)
    return [turns[i] for i in sorted(chosen)]


def kmeans_distance(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Squared L2 distance of each vector to its nearest k-means centroid (FAISS)."""
    import faiss

    km = faiss.Kmeans(vectors.shape[1], k, niter=25, seed=seed, verbose=False)
    km.train(np.ascontiguousarray(vectors, np.float32))
    distances, _ = km.index.search(np.ascontiguousarray(vectors, np.float32), 1)
    return distances[:, 0].astype(np.float64)


def precision_at(scores: np.ndarray, truth: np.ndarray, n: int) -> float:
    """The share of outliers among the n highest scores."""
    return float(truth[np.argsort(-scores, kind="stable")[:n]].mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t0", type=int, default=4000, help="t0 prompts (inliers)")
    parser.add_argument("--share", type=float, default=0.02, help="outliers' share of the mix")
    parser.add_argument("--seeds", type=int, default=2, help="fits of the default config")
    parser.add_argument(
        "--bottlenecks", default="4,8,32", help="other bottleneck widths, one seed each ('' none)"
    )
    parser.add_argument("--workdir", default="/tmp/bench-anomaly", help="the embedding cache")
    parser.add_argument("--no-results", action="store_true", help="do not append RESULTS.md")
    args = parser.parse_args()
    if not T0.exists() or not HH.exists():
        log(f"{DATA} lacks t0-prompts or hh-rlhf: nothing to measure")
        return 2

    from sklearn.metrics import roc_auc_score

    from pipeline.anomaly.settings import AnomalySettings
    from pipeline.config import load_params
    from pipeline.embed import EmbedSettings, embed_texts

    cfg = load_params(ROOT / "params.yaml")
    embed = EmbedSettings.from_cfg(cfg.embed)
    outliers = round(args.t0 * args.share / (1 - args.share))
    texts = t0_prompts(args.t0, 42) + hh_turns(outliers, 42)
    truth = np.r_[np.zeros(args.t0), np.ones(outliers)].astype(bool)
    log(f"embedding {len(texts)} texts ({outliers} hh-rlhf), cache in {args.workdir}")
    clock = time.perf_counter()
    vectors = embed_texts(texts, embed, cache_dir=Path(args.workdir) / "embeddings")
    log(f"embedded in {time.perf_counter() - clock:.0f} s")

    from pipeline.anomaly.fit import fit_scores

    rows = []
    aucs, precs, fits = [], [], []
    for seed in range(args.seeds):
        settings = AnomalySettings.from_cfg(cfg.anomaly, 42 + seed)
        fitted = fit_scores(vectors, settings)
        aucs.append(roc_auc_score(truth, fitted.scores))
        precs.append(precision_at(fitted.scores, truth, outliers))
        fits.append(fitted.seconds)
        log(f"autoencoder seed {42 + seed}: AUC {aucs[-1]:.4f} in {fitted.seconds:.1f} s")
    rows.append(
        f"| autoencoder (default: bottleneck={cfg.anomaly.net.bottleneck}, {args.seeds} seeds) | "
        f"{np.mean(aucs):.3f} ± {np.std(aucs):.3f} | {np.mean(precs):.3f} | "
        f"{np.mean(fits):.1f} |"
    )
    for width in [int(w) for w in args.bottlenecks.split(",") if w.strip()]:
        section = {**cfg.anomaly, "net": {**cfg.anomaly.net, "bottleneck": width}}
        fitted = fit_scores(vectors, AnomalySettings.from_cfg(section, 42))
        auc = roc_auc_score(truth, fitted.scores)
        prec = precision_at(fitted.scores, truth, outliers)
        log(f"autoencoder bottleneck {width}: AUC {auc:.4f}")
        rows.append(
            f"| autoencoder, bottleneck={width} (1 seed) | {auc:.3f} | {prec:.3f} "
            f"| {fitted.seconds:.1f} |"
        )
    for k in KS:
        clock = time.perf_counter()
        scores = kmeans_distance(vectors, k, 42)
        seconds = time.perf_counter() - clock
        auc, prec = roc_auc_score(truth, scores), precision_at(scores, truth, outliers)
        log(f"k-means k={k}: AUC {auc:.4f}")
        row = f"| nearest-centroid distance, k={k} | {auc:.3f} | {prec:.3f} | {seconds:.1f} |"
        rows.append(row)

    lines = [
        f"Inliers: {args.t0} t0-prompts (seeded sample); outliers: {outliers} hh-rlhf first "
        f"human turns ({args.share:.0%} of the mix). Vectors: {embed.model} ({embed.backend}) "
        f"of the prompt, shared by every method. AUC = ROC AUC of outlier vs inlier; P@N = "
        f"precision among the top {outliers}. Seconds: fit + score (the machine was shared).",
        "",
        "| method | ROC AUC | P@N | seconds |",
        "|---|---:|---:|---:|",
        *rows,
    ]
    lines += strangest_of_sample()
    print("\n".join(lines))
    if not args.no_results:
        from results import append_section

        command = (
            f"benchmarks/anomaly.py --t0 {args.t0} --share {args.share} --seeds {args.seeds} "
            f"--bottlenecks {args.bottlenecks!r}"
        )
        append_section("Anomaly scores: hh-rlhf mixed into t0-prompts", command, lines)
    return 0


def strangest_of_sample(n: int = 20) -> list[str]:
    """The anomaly stage's n strangest kept records of the bundled sample, if it has run."""
    from pipeline.store.anomalies import strangest

    store = ROOT / "data" / "dedup" / "store.duckdb"
    try:
        found = strangest(store, n)
    except Exception as exc:  # no store or no scores yet: say so, the measure above stands
        return ["", f"(top {n} of the bundled sample skipped: {exc})"]
    out = ["", f"Top {n} strangest kept records of the bundled sample (`dvc repro anomaly`):", ""]
    for r in found:
        prompt = " ".join(str(r["prompt"]).split())[:70].replace("|", "/")
        out.append(f"- {r['anomaly_score']:.3f} `{r['id']}` ({r['label']}): {prompt}")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
