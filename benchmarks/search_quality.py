"""Hybrid search quality on t0-prompts: derived queries, fusion tuned on dev, reported on test.

Called by benchmarks/search.py (`--t0-root`). Every query is derived from one kept prompt
and its answer is that record. Records are split in two by a seeded coin (dev / test), so
the queries that choose the fusion parameters and those that report them come from
different records. Query sets (each made for dev and for test records):

- windows: a 16-word window of a prompt (>= 20 words) with every 4th word dropped.
- windows + typos: the same windows with two adjacent letters swapped in 40% of the words.
- paraphrase-like: a 24-word window split into clauses at , . ; : ? ! and the clauses
  shuffled; 40% of the words dropped; 10% replaced by a word of another record with the
  same label (same T0 task: its template vocabulary); 50% re-inflected by a suffix rule
  (-ing, -ed, -s stripped, else -d or -s added: "parcels" -> "parcel"), which BM25
  without stemming misses; typos as above in 20%.

For each query the vector and keyword top-200 and the exact scores of their union are
computed once; every fusion setting then re-ranks them with the Searcher's own `fuse`.
The setting with the best mean dev recall@10 over the three sets is chosen. The vector,
keyword and configured-hybrid rows are also measured end to end through `Searcher.search`.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.retrieval.bootstrap import typo  # the retrieval stage's bootstrap typos
from pipeline.search.hybrid import fuse
from pipeline.store.scope import Scope

K = 10
DEPTH = 200  # deepest candidate list the grid tries
OLD = {"fusion": "rrf", "alpha": 0.5, "normalization": "minmax", "rrf_k": 60, "candidates": 100}


def fusion_grid() -> list[dict]:
    """Every fusion setting tried on dev: weighted RRF and convex combination, 5 depths."""
    grid = []
    for candidates in (10, 20, 50, 100, 200):
        for rrf_k, alpha in itertools.product((5, 10, 20, 60), (0.2, 0.3, 0.4, 0.5)):
            grid.append(
                {"fusion": "rrf", "alpha": alpha, "normalization": "minmax", "rrf_k": rrf_k}
                | {"candidates": candidates}
            )
        for how, alpha in itertools.product(("minmax", "zscore", "max"), np.arange(21) / 20):
            grid.append(
                {"fusion": "convex", "alpha": float(alpha), "normalization": how, "rrf_k": 60}
                | {"candidates": candidates}
            )
    return grid


def inflect(word: str) -> str:
    """Another form of the word by a suffix rule (punctuation kept; short or non-alpha as is)."""
    core = word.rstrip(".,;:?!\"')")
    tail = word[len(core) :]
    low = core.lower()
    if len(core) < 4 or not core.isalpha():
        return word
    if low.endswith("ing") and len(core) > 5:
        core = core[:-3]
    elif low.endswith("ed") and len(core) > 4:
        core = core[:-2]
    elif low.endswith("s") and not low.endswith("ss"):
        core = core[:-1]
    else:
        core += "d" if low.endswith("e") else "s"
    return core + tail


def windows(
    prompts: list[str], pool: np.ndarray, rng: np.random.Generator, n: int, typo_rate: float
) -> list[tuple[int, str]]:
    """(record, query): a 16-word window, every 4th word dropped, typos in `typo_rate`."""
    out = []
    for i in rng.permutation(pool):
        words = prompts[i].split()
        if len(words) < 20:
            continue
        lo = int(rng.integers(0, len(words) - 16))
        window = [w for j, w in enumerate(words[lo : lo + 16]) if j % 4 != 3]
        if typo_rate:
            window = [typo(w, rng) if rng.random() < typo_rate else w for w in window]
        out.append((int(i), " ".join(window)))
        if len(out) == n:
            break
    return out


def paraphrase_like(
    prompts: list[str], labels: list[str], pool: np.ndarray, rng: np.random.Generator, n: int
) -> list[tuple[int, str]]:
    """(record, query): clauses shuffled, words dropped, swapped, re-inflected, typos."""
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    vocab = {
        label: sorted({w for i in rows[:300] for w in prompts[i].split()})
        for label, rows in by_label.items()
    }
    out = []
    for i in rng.permutation(pool):
        words = prompts[i].split()
        if len(words) < 20:
            continue
        lo = int(rng.integers(0, len(words) - 23)) if len(words) > 24 else 0
        text = " ".join(words[lo : lo + 24])
        clauses = [c.split() for c in re.split(r"(?<=[,.;:?!])\s+", text) if c.strip()]
        order = rng.permutation(len(clauses))
        kept = [w for j in order for w in clauses[j] if rng.random() >= 0.4]
        same_task = vocab[labels[i]]
        kept = [
            same_task[int(rng.integers(len(same_task)))] if rng.random() < 0.1 else w for w in kept
        ]
        kept = [inflect(w) if rng.random() < 0.5 else w for w in kept]
        kept = [typo(w, rng) if rng.random() < 0.2 else w for w in kept]
        if kept:
            out.append((int(i), " ".join(kept)))
        if len(out) == n:
            break
    return out


@dataclass
class Candidates:
    """One query's vector and keyword top-DEPTH rows and exact scores of their union."""

    target: int  # row of the record the query came from
    vector_rows: np.ndarray
    keyword_rows: np.ndarray
    union: np.ndarray  # sorted
    vector_scores: np.ndarray  # over union
    keyword_scores: np.ndarray

    def ranking(self, setting: dict) -> list[int]:
        depth = setting["candidates"]
        vec, kw = self.vector_rows[:depth], self.keyword_rows[:depth]
        fused = fuse(
            vec,
            kw,
            lambda rows: self.vector_scores[np.searchsorted(self.union, rows)],
            lambda rows: self.keyword_scores[np.searchsorted(self.union, rows)],
            setting["fusion"],
            setting["alpha"],
            setting["normalization"],
            setting["rrf_k"],
        )
        return [row for row, _ in fused[:K]]


def candidates_of(searcher, queries: list[tuple[int, str]], rows_of_record) -> list[Candidates]:
    state = searcher._state
    out = []
    for i, text in queries:
        query = searcher._encode(text)
        vec_rows, _, _ = state.vector_top(query, DEPTH, None, 0, 0)
        kw_all = state.bm25.scores(text)
        kw_rows, _ = state.keyword_top(text, DEPTH, None, scores=kw_all)
        union = np.union1d(vec_rows, kw_rows)
        out.append(
            Candidates(
                rows_of_record[i],
                vec_rows,
                kw_rows,
                union,
                state.vector_scores(query, union),
                kw_all[union],
            )
        )
    return out


def recall_mrr(rankings: list[list[int]], targets: list[int]) -> tuple[float, float]:
    """recall@10 (the source record among the top 10) and MRR@10."""
    ranks = [r.index(t) + 1 if t in r else 0 for r, t in zip(rankings, targets, strict=True)]
    return (
        sum(1 for r in ranks if r) / len(ranks),
        sum(1 / r for r in ranks if r) / len(ranks),
    )


def measure(cands: list[Candidates], setting: dict | str) -> tuple[float, float]:
    if setting == "vector":
        rankings = [c.vector_rows[:K].tolist() for c in cands]
    elif setting == "keyword":
        rankings = [c.keyword_rows[:K].tolist() for c in cands]
    else:
        rankings = [c.ranking(setting) for c in cands]
    return recall_mrr(rankings, [c.target for c in cands])


def describe(setting: dict) -> str:
    if setting["fusion"] == "rrf":
        return (
            f"rrf, rrf_k={setting['rrf_k']}, alpha={setting['alpha']:g}, "
            f"candidates={setting['candidates']}"
        )
    return (
        f"convex, alpha={setting['alpha']:g}, normalization={setting['normalization']}, "
        f"candidates={setting['candidates']}"
    )


def hybrid_quality(t0_root: Path, n_queries: int, params: dict) -> str:
    """The report section; `params` is the project config whose `search` is measured."""
    import pyarrow.parquet as pq

    from pipeline.search.api import open_from_config

    records = pq.read_table(
        t0_root / "data" / "dedup" / "records.parquet", columns=["rid", "prompt", "label"]
    )
    rids = np.asarray(records.column("rid").to_pylist(), dtype=np.int64)
    prompts = records.column("prompt").to_pylist()
    labels = records.column("label").to_pylist()
    searcher = open_from_config(t0_root, params)
    rows_of_record = np.searchsorted(searcher._state.rids, rids)
    assert np.array_equal(searcher._state.rids[rows_of_record], rids)
    is_dev = np.random.default_rng(29).random(len(rids)) < 0.5
    pools = {"dev": np.flatnonzero(is_dev), "test": np.flatnonzero(~is_dev)}
    sets = {}
    for split, pool in pools.items():
        seed = 13 if split == "dev" else 14
        sets["windows", split] = windows(prompts, pool, np.random.default_rng(seed), n_queries, 0)
        sets["windows + typos", split] = windows(
            prompts, pool, np.random.default_rng(seed), n_queries, 0.4
        )
        sets["paraphrase-like", split] = paraphrase_like(
            prompts, labels, pool, np.random.default_rng(seed + 4), n_queries
        )
    names = list(dict.fromkeys(name for name, _ in sets))
    cands = {key: candidates_of(searcher, qs, rows_of_record) for key, qs in sets.items()}

    start = time.perf_counter()
    grid = fusion_grid()
    scored = []
    for setting in grid:
        dev = [measure(cands[name, "dev"], setting) for name in names]
        scored.append((np.mean([r for r, _ in dev]), np.mean([m for _, m in dev]), setting))
    best_recall, best_mrr, best = max(scored, key=lambda t: (t[0], t[1]))  # first of equals
    tuning_s = time.perf_counter() - start

    s = searcher.settings
    configured = {
        "fusion": s.fusion,
        "alpha": s.alpha,
        "normalization": s.normalization,
        "rrf_k": s.rrf_k,
        "candidates": s.candidates,
    }
    # End to end through Searcher.search: the configured default, with latency.
    e2e: dict[tuple[str, str], dict[str, float]] = {}
    times: dict[str, list[float]] = {m: [] for m in ("vector", "keyword", "hybrid")}
    for (name, split), queries in sets.items():
        hits = dict.fromkeys(times, 0)
        for i, text in queries:
            for mode in times:
                t = time.perf_counter()
                found = {h.rid for h in searcher.search(text, k=K, mode=mode, scope=Scope.all())}
                times[mode].append(time.perf_counter() - t)
                hits[mode] += int(rids[i]) in found
        e2e[name, split] = {m: hits[m] / len(queries) for m in times}
    searcher.close()

    def cell(value: tuple[float, float]) -> str:
        return f"{value[0]:.3f} / {value[1]:.3f}"

    lines = [
        f"**Hybrid quality on t0-prompts** (recall@10 / MRR@10; up to {n_queries} queries per "
        "set and split; dev and test queries come from disjoint halves of the records, split "
        "by a seeded coin; query sets as in benchmarks/search_quality.py: windows = a 16-word "
        "window with every 4th word dropped; + typos = two letters swapped in 40% of the "
        "words; paraphrase-like = clauses shuffled, 40% of words dropped, 10% replaced by "
        "words of same-task records, 50% re-inflected, 20% typos)",
        "",
        f"Tuned on dev: {len(grid)} settings (weighted RRF: rrf_k 5/10/20/60 x alpha "
        "0.2-0.5; convex: minmax/zscore/max x alpha 0-1 step 0.05; each at 10/20/50/100/200 "
        f"candidates per side) in {tuning_s:.0f} s. Best mean dev recall@10 "
        f"{best_recall:.3f} (MRR {best_mrr:.3f}): **{describe(best)}**. "
        f"Configured default (conf/search): {describe(configured)}"
        + (" (the same)." if configured == best else " (differs from this run's dev best)."),
        "",
        "| query set | split | queries | vector | keyword | old hybrid (RRF k=60, 100) | "
        "dev-best hybrid | configured hybrid | end to end: vector / keyword / configured |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, split in itertools.product(names, ("dev", "test")):
        c = cands[name, split]
        e = e2e[name, split]
        lines.append(
            f"| {name} | {split} | {len(c)} | {cell(measure(c, 'vector'))} | "
            f"{cell(measure(c, 'keyword'))} | {cell(measure(c, OLD))} | "
            f"{cell(measure(c, best))} | {cell(measure(c, configured))} | "
            f"{e['vector']:.3f} / {e['keyword']:.3f} / {e['hybrid']:.3f} |"
        )
    means = []
    for split in ("dev", "test"):
        row = [
            np.mean([measure(cands[n, split], m)[0] for n in names])
            for m in ("vector", "keyword", OLD, best, configured)
        ]
        means.append(f"{split} " + " / ".join(f"{v:.3f}" for v in row))
    lat = " / ".join(f"{float(np.percentile(times[m], 50)) * 1000:.1f}" for m in times)
    lines += [
        "",
        "Mean recall@10 over the three sets, vector / keyword / old hybrid / dev-best / "
        f"configured: {'; '.join(means)}. p50 ms of `Searcher.search` vector / keyword / "
        f"configured hybrid, incl. query encoding: {lat}.",
    ]
    return "\n".join(lines)
