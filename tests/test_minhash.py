"""Near-duplicate detection measured against exact things: Python shingle sets, brute-force
Jaccard over seeded synthetic texts with planted pairs at known similarity, and t0-prompts."""

from __future__ import annotations

import gzip
import itertools
import json
import random
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import compose
from pipeline.dedup import minhash
from pipeline.dedup.lsh import (
    candidate_pairs,
    jaccard_pairs,
    permutation_params,
    signatures,
    verify_pairs,
)
from pipeline.dedup.minhash import NearDupSettings, near_duplicates, similar_pairs
from pipeline.dedup.shingles import shingle_sets
from pipeline.errors import UserInputError
from pipeline.text.tokens import shingle_tokens

WORD = NearDupSettings()
CHAR = NearDupSettings(shingle="char", ngram=5)


def reference_shingles(text: str, shingle: str, ngram: int) -> set[str | tuple[str, ...]]:
    """The definition, in plain Python: n-grams of words (str.split(), each character of a
    script without spaces on its own) or of characters."""
    tokens: list[str] | str = shingle_tokens(text) if shingle == "word" else text
    if len(tokens) < ngram:
        return {tuple(tokens)}
    return {tuple(tokens[i : i + ngram]) for i in range(len(tokens) - ngram + 1)}


def reference_jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b)


def planted_corpus(seed: int = 7, n_base: int = 120) -> list[str]:
    """Random-word documents plus variants whose 5-gram Jaccard to their base is planted."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(3000)]
    texts = []
    for b in range(n_base):
        words = [rng.choice(vocab) for _ in range(rng.randint(60, 200))]
        texts.append(" ".join(words))
        target = (0.5, 0.7, 0.85, 0.95)[b % 4]
        # Each replaced word, 5 apart, removes 5 shingles from each side's intersection.
        k = max(1, round((len(words) - 4) * (1 - target) / (5 * (1 + target))))
        variant = list(words)
        for pos in rng.sample(range(0, len(words), 5), k):
            variant[pos] = f"new{b}x{pos}"
        texts.append(" ".join(variant))
    return texts


def test_shingle_hashes_match_python_sets() -> None:
    texts = [
        "",
        "one",
        "a b c d",
        "a b c d e",
        "the quick brown fox jumps over the lazy dog the quick brown fox",
        "tabs\tand\nnewlines\x1f and\u00a0nbsp\u2003em\u3000ideographic space words here",
        "ünïcödé wörds ünïcödé wörds ünïcödé wörds ünïcödé",
        "我的快递延误了三天 用Python写代码, ภาษาไทย",
        "a b c d e f",
        "a b c d e f g",
    ]
    for settings in (WORD, CHAR, NearDupSettings(ngram=1), NearDupSettings(ngram=3)):
        values, offsets = shingle_sets(texts, settings.shingle, settings.ngram, settings.seed)
        sets = [reference_shingles(t, settings.shingle, settings.ngram) for t in texts]
        assert list(np.diff(offsets)) == [len(s) for s in sets]
        for i in range(len(texts)):
            assert np.all(np.diff(values[offsets[i] : offsets[i + 1]].astype(np.float64)) > 0)
        left, right = np.triu_indices(len(texts), k=1)
        got = jaccard_pairs(values, offsets, left, right)
        want = [reference_jaccard(sets[i], sets[j]) for i, j in zip(left, right, strict=True)]
        np.testing.assert_allclose(got, want)


@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.85, 0.95])
def test_verify_pairs_agrees_with_exact_jaccard(threshold: float) -> None:
    texts = planted_corpus(seed=5, n_base=60)
    values, offsets = shingle_sets(texts, "word", 5, 1)
    left, right = np.triu_indices(len(texts), k=1)
    exact = jaccard_pairs(values, offsets, left, right)
    got = verify_pairs(values, offsets, left, right, threshold)
    above = exact >= threshold
    assert above.any()
    np.testing.assert_array_equal(got[above], exact[above])
    assert not np.any(got[~above])


def test_signature_agreement_estimates_jaccard() -> None:
    texts = planted_corpus(seed=3, n_base=80)
    values, offsets = shingle_sets(texts, "word", 5, 1)
    a, b = permutation_params(256, seed=1)
    sig = signatures(values, offsets, a, b)
    left = np.arange(0, len(texts), 2)
    right = left + 1
    true = jaccard_pairs(values, offsets, left, right)
    estimate = (sig[left] == sig[right]).mean(axis=1)
    assert np.abs(estimate - true).mean() < 0.03
    assert abs((estimate - true).mean()) < 0.02  # no systematic bias


def test_recall_against_brute_force_with_planted_pairs() -> None:
    texts = planted_corpus()
    sets = [reference_shingles(t, "word", 5) for t in texts]
    truth = {
        (i, j)
        for i, j in itertools.combinations(range(len(texts)), 2)
        if reference_jaccard(sets[i], sets[j]) >= WORD.threshold
    }
    planted = [reference_jaccard(sets[i], sets[i + 1]) for i in range(0, len(texts), 2)]
    assert sum(j >= 0.8 for j in planted) == len(truth) > 40  # the plant worked
    left, right, sims = similar_pairs(texts, WORD)
    found = set(zip(left.tolist(), right.tolist(), strict=True))
    assert found <= truth  # verified: precision 1
    assert len(found & truth) / len(truth) >= 0.95
    for i, j, s in zip(left, right, sims, strict=True):
        assert s == pytest.approx(reference_jaccard(sets[i], sets[j]))

    result = near_duplicates(texts, WORD)
    assert [r for r, _, _ in result] == sorted(r for r, _, _ in result)
    for removed, survivor, sim in result:
        assert (survivor, removed) in truth
        assert sim == pytest.approx(reference_jaccard(sets[removed], sets[survivor]))
    assert len(result) / len(truth) >= 0.95


def test_deterministic_for_a_seed() -> None:
    texts = planted_corpus(seed=11)
    first = near_duplicates(texts, WORD)
    assert near_duplicates(texts, WORD) == first
    assert near_duplicates(texts, NearDupSettings(workers=1)) == first
    other_seed = near_duplicates(texts, NearDupSettings(seed=99))
    assert {r for r, _, _ in other_seed} <= {r for r, _, _ in first} | {r for r, _, _ in other_seed}


def test_chained_pairs_form_one_cluster_and_report_their_own_jaccard() -> None:
    words = [f"c{i}" for i in range(400)]
    b = list(words)
    for pos in range(0, 400, 80):  # 5 edits: J(a, b) = 0.88
        b[pos] = f"x{pos}"
    c = list(b)
    for pos in range(40, 400, 80):  # 5 more: J(b, c) = 0.88, J(a, c) = 0.78
        c[pos] = f"y{pos}"
    texts = [" ".join(words), " ".join(b), " ".join(c)]
    sets = [reference_shingles(t, "word", 5) for t in texts]
    assert reference_jaccard(sets[0], sets[1]) >= 0.8 > reference_jaccard(sets[0], sets[2])
    assert reference_jaccard(sets[1], sets[2]) >= 0.8
    result = near_duplicates(texts, WORD)
    assert [(r, s) for r, s, _ in result] == [(1, 0), (2, 0)]
    assert result[1][2] == pytest.approx(reference_jaccard(sets[0], sets[2]))  # below 0.8


def test_clusters_match_components_of_all_verified_pairs() -> None:
    """Skipping pairs already inside one cluster must not change the clusters."""
    texts = planted_corpus(seed=17) + [" ".join(f"d{i}" for i in range(60))] * 5
    left, right, _ = similar_pairs(texts, WORD)
    root = list(range(len(texts)))

    def find(x: int) -> int:
        while root[x] != x:
            x = root[x]
        return x

    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        root[max(find(i), find(j))] = min(find(i), find(j))
    want = {i: find(i) for i in range(len(texts)) if find(i) != i}
    got = {r: s for r, s, _ in near_duplicates(texts, WORD)}
    assert got == want


def test_large_input_path_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above KEEP_CHARS, pass 1 hashes unsorted shingles and pass 2 recomputes candidates."""
    texts = planted_corpus(seed=13)
    kept = near_duplicates(texts, WORD)
    monkeypatch.setattr(minhash, "KEEP_CHARS", 0)
    assert near_duplicates(texts, WORD) == kept
    assert len(kept) > 40


def test_survivor_is_lowest_priority_then_lowest_index() -> None:
    base = " ".join(f"t{i}" for i in range(50))
    texts = [base, "unrelated words " * 10, base, base + " extra", base]
    assert near_duplicates(texts, WORD) == [
        (2, 0, 1.0),
        (3, 0, pytest.approx(46 / 47)),
        (4, 0, 1.0),
    ]
    priority = np.array([3, 0, 1, 0, 1])
    result = near_duplicates(texts, WORD, priority=priority)
    assert [(r, s) for r, s, _ in result] == [(0, 3), (2, 3), (4, 3)]
    tied = near_duplicates(texts, WORD, priority=np.array([1, 0, 0, 1, 0]))
    assert [(r, s) for r, s, _ in tied] == [(0, 2), (3, 2), (4, 2)]
    with pytest.raises(ValueError, match="priority"):
        near_duplicates(texts, WORD, priority=np.zeros(2))


def test_edge_cases() -> None:
    assert near_duplicates([], WORD) == []
    assert near_duplicates(["only one text"], WORD) == []
    assert near_duplicates(["", ""], WORD) == [(1, 0, 1.0)]
    # Fewer words than ngram: the whole text is one shingle, so only equal texts match.
    assert near_duplicates(["hello world", "hello there", "hello world"], WORD) == [(2, 0, 1.0)]
    same = ["the same text repeated many times over and over"] * 300  # one huge LSH bucket
    result = near_duplicates(same, WORD)
    assert [(r, s, j) for r, s, j in result] == [(i, 0, 1.0) for i in range(1, 300)]


def test_char_shingles_find_small_edits() -> None:
    text = "colourless green ideas sleep furiously while the quick brown fox jumps " * 3
    edited = text.replace("furiously", "furiosly", 1)
    other = "an entirely different sentence about refunds for a damaged parcel " * 3
    result = near_duplicates([text, other, edited], CHAR)
    want = reference_jaccard(
        reference_shingles(text, "char", 5), reference_shingles(edited, "char", 5)
    )
    assert result == [(2, 0, pytest.approx(want))]
    assert (
        near_duplicates([text, other, edited], NearDupSettings(shingle="char", threshold=0.99))
        == []
    )


def test_candidate_window_keeps_big_buckets_connected() -> None:
    keys = np.zeros((100, 2), np.uint64)
    left, right = candidate_pairs(keys, window=3)
    assert len(left) == 97 + 98 + 99
    assert set(range(100)) == set(left.tolist()) | set(right.tolist())


def test_settings_from_the_composed_config() -> None:
    cfg = compose()
    settings = NearDupSettings.from_cfg(cfg.dedup.near)
    assert settings.num_perm % settings.bands == 0
    assert settings.fields == tuple(cfg.dedup.near.fields)
    with pytest.raises(UserInputError, match=r"dedup\.near\.bands"):
        NearDupSettings.from_cfg({"num_perm": 128, "bands": 5})
    with pytest.raises(UserInputError, match=r"dedup\.near\.shingle"):
        NearDupSettings.from_cfg({"shingle": "sentence"})
    with pytest.raises(UserInputError, match="unknown key"):
        NearDupSettings.from_cfg({"treshold": 0.8})


def _normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@pytest.mark.slow
@pytest.mark.shared_data
def test_recall_on_t0_prompts_against_all_pairs(t0_prompts_path) -> None:
    """3,000 real records: every pair's exact Jaccard (4.5M pairs) vs the LSH result."""
    texts = []
    with gzip.open(t0_prompts_path, "rt", encoding="utf-8") as fh:
        for line in itertools.islice(fh, 0, 55_185, 18):  # every 18th: all task families
            record = json.loads(line)
            texts.append(_normalise(record["prompt"] + "\n" + record["response"]))
    values, offsets = shingle_sets(texts, "word", 5, 1)
    left, right = np.triu_indices(len(texts), k=1)
    truth = jaccard_pairs(values, offsets, left, right) >= 0.8
    truth_pairs = set(zip(left[truth].tolist(), right[truth].tolist(), strict=True))
    found_left, found_right, _ = similar_pairs(texts, WORD)
    found = set(zip(found_left.tolist(), found_right.tolist(), strict=True))
    assert len(truth_pairs) > 1000, len(truth_pairs)  # 1,661 with this sample
    assert found <= truth_pairs
    assert len(found) / len(truth_pairs) >= 0.95


def test_keyed_path_from_band_keys_and_fetched_texts_matches(tmp_path: Path) -> None:
    """The stage's path: band keys made a batch at a time, a subset of rows, candidate texts
    fetched on demand, shingles memory-mapped from a scratch file: the same clusters."""
    texts = planted_corpus()
    settings = NearDupSettings()
    rng = np.random.default_rng(3)
    rows = np.sort(rng.choice(len(texts), size=len(texts) * 3 // 4, replace=False))
    priority = rng.permutation(len(rows))
    keys = np.concatenate([minhash.band_keys_of(texts[i : i + 50], settings)
                           for i in range(0, len(texts), 50)])  # fmt: skip
    fetched: list[np.ndarray] = []

    def fetch(idx: np.ndarray) -> list[str]:
        fetched.append(idx)
        return [texts[i] for i in idx]

    got = minhash.near_duplicates_keyed(
        keys, fetch, settings, priority, rows=rows, scratch=tmp_path
    )
    want = near_duplicates([texts[i] for i in rows], settings, priority)
    assert got == want and len(want) > 10
    asked = np.concatenate(fetched)
    assert np.all(np.isin(asked, rows)) and len(asked) < len(rows)  # candidates only
    assert (tmp_path / "shingles.u64").exists()
