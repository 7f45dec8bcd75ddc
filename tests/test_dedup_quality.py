"""Quality filters: the measures, the config, and the real dedup stage writing filtered
records to the store's `filtered` table (DuckDB), the report and MLflow (sqlite), the
accounting with its `filtered` term, `pipeline records show` saying why, and erasure."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from mlflow.tracking import MlflowClient

from pipeline.config import compose, to_yaml
from pipeline.dedup.quality import measures as m
from pipeline.dedup.quality.batch import measure, prepare
from pipeline.dedup.quality.language import identify
from pipeline.dedup.steps.quality import QualityFilter, build_filters, first_failure
from pipeline.errors import UserInputError
from pipeline.stages.dedup import run
from pipeline.store.erasure import copy_without_user, count_user_rows

BLOB = "aGVsbG8gd29ybGQgdGhpcyBpcyBhIGJhc2U2NCBzdHJpbmcgdGhhdCBpcyBsb25n" * 2
GOOD = [
    {"id": "thanks", "prompt": "Thanks!", "response": "You're welcome."},
    {"id": "empty", "prompt": "Tell me a story.", "response": ""},  # t0 has 1,400 such
    {"id": "maths", "prompt": "What is 17 * 23?", "response": "391"},
    {"id": "zh", "prompt": "请帮我写一封邮件给我的老板。", "response": "好的，这是草稿。"},
    {"id": "th", "prompt": "ช่วยแปลประโยคนี้เป็นภาษาอังกฤษหน่อย", "response": None},
    {"id": "ja", "prompt": "東京で一番おいしいラーメン屋はどこですか？", "response": None},
    {"id": "code", "prompt": "Why does `for (i = 0; i < n; i++) { a[i] = b[i]; }` crash?",
     "response": "Check that a has room for n items."},
]  # fmt: skip
JUNK = {  # id -> the filter that must catch it
    "blob": ({"prompt": f"decode {BLOB} please now", "response": None}, "mean_word_length"),
    "loop": ({"prompt": "Say something.", "response": "buy now " * 30}, "top_ngram"),
    "tags": ({"prompt": "#sale #win #free #ad #promo", "response": None}, "symbol_ratio"),
    "symbols": ({"prompt": "!!!! ???? $$$$ %%%% &&&& ****", "response": None}, "non_alpha"),
}


def write_rows(root: Path) -> Path:
    rows = GOOD + [{"id": key, "user_id": "mallory" if key == "blob" else None, **row}
                   for key, (row, _) in JUNK.items()]  # fmt: skip
    path = root / "raw" / "a.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path.parent


def stage(root: Path, *overrides: str) -> dict:
    cfg = compose([f"tracking.uri=sqlite:///{root / 'mlflow.db'}", *overrides])
    cfg.data.path = str(write_rows(root))
    (root / "params.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    return run(cfg, root)


def query(root: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(root / "data" / "dedup" / "store.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_measures_in_any_script() -> None:
    assert m.mean_word_length("请帮我写一封邮件。") is None  # no word written with spaces
    assert m.mean_word_length("Use 用Python, ok?") == 11 / 3  # "Use", "Python", "ok"
    assert m.non_alpha_fraction("ช่วยแปลประโยคนี้") == 0.0  # Thai vowel marks are text
    assert m.non_alpha_fraction("मुझे दिल्ली में") == 0.0  # so are Devanagari's
    tokens = m.words("what is the time now")
    assert m.top_ngram_fraction(tokens, 2, 20) == 0.0  # a unique 2-gram is not "repeated"
    loop = "buy now " * 5
    assert m.top_ngram_fraction(m.words(loop), 2, len(loop)) == 7 * 5 / 40  # spaces excepted
    text = "one two three four five " * 3
    assert m.dup_ngram_fraction(m.words(text), 5, len(text)) > 0.5
    assert m.repeated_line_fraction("a line\nb line\na line") == pytest.approx(6 / 18)


def _top_reference(tokens: list[str], n: int, chars: int) -> float:
    """datatrove's find_top_duplicate over word tuples, counting only a repeated n-gram."""
    if len(tokens) < n + 1 or chars == 0:
        return 0.0
    gram, count = Counter(zip(*(tokens[i:] for i in range(n)), strict=False)).most_common(1)[0]
    return 0.0 if count < 2 else min(1.0, (sum(map(len, gram)) + n - 1) * count / chars)


def _dup_reference(tokens: list[str], n: int, chars: int) -> float:
    """datatrove's find_all_duplicate over word tuples."""
    if len(tokens) < 2 * n or chars == 0:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeated = i = 0
    while i <= len(tokens) - n:
        gram = tuple(tokens[i : i + n])
        if gram in seen:
            repeated, i = repeated + sum(map(len, gram)), i + n
        else:
            seen.add(gram)
            i += 1
    return min(1.0, repeated / chars)


def test_hashed_ngram_measures_equal_the_plain_ones_and_their_bounds_hold() -> None:
    rng = random.Random(12)
    vocab = ["a", "bb", "ccc", "the", "of", "now", "buy", "请", "帮"]
    for _ in range(400):
        text = " ".join(rng.choice(vocab[: rng.randint(2, 9)]) for _ in range(rng.randint(1, 80)))
        tokens, chars = m.words(text), len(text)
        top = [_top_reference(list(tokens), n, chars) for n in (2, 3, 4)]
        dup = [_dup_reference(list(tokens), n, chars) for n in range(5, 11)]
        assert [m.top_ngram_fraction(tokens, n, chars) for n in (2, 3, 4)] == top
        assert [m.dup_ngram_fraction(tokens, n, chars) for n in range(5, 11)] == dup
        assert max(top) <= m.top_ngram_bound(tokens, 4, chars) + 1e-12
        assert max(dup) <= m.dup_ngram_bound(tokens, 5, chars) + 1e-12


def test_language_identifier_works_offline() -> None:
    assert identify("Can you help me write an email to my landlord?")[0] == "en"
    assert identify("请帮我写一封邮件给我的老板。")[0] == "zh"
    assert identify("ช่วยแปลประโยคนี้เป็นภาษาอังกฤษหน่อย")[0] == "th"


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"nope": {}}, r"filters.nope: unknown filter 'nope'"),
        ({"word_count": {"minimum": 3}}, r"filters.word_count: unknown keys \['minimum'\]"),
        ({"word_count": {"min": -1}}, r"filters.word_count.min=-1"),
        ({"top_ngram": {"max": [0.5]}}, r"filters.top_ngram.max: one maximum per n"),
        ({"non_alpha": {"fields": ["label"], "max": 0.5}}, r"\['label'\] not in"),
        ({"language": {"languages": []}}, r"filters.language.languages"),
    ],
)
def test_bad_filter_config_names_the_key(filters: dict, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        build_filters(filters)


def test_stage_filters_junk_into_the_filtered_table_and_accounts(tmp_path: Path) -> None:
    report = stage(tmp_path)
    stored = {row[0]: row[1:] for row in query(
        tmp_path, "SELECT id, filter, value, threshold, bound, detail FROM filtered")}  # fmt: skip
    assert {key: row[0] for key, row in stored.items()} == {k: f for k, (_, f) in JUNK.items()}
    assert stored["loop"][1:] == (0.875, 0.5, "max", "response n=2")  # "buy now " x 30
    assert stored["tags"][1:] == (1.0, 0.5, "max", "prompt")
    kept = {row[0] for row in query(tmp_path, "SELECT id FROM records")}
    assert kept == {r["id"] for r in GOOD}  # good records in any script stay
    assert query(tmp_path, "SELECT count(*) FROM duplicates") == [(0,)]
    assert report["filtered"] == {
        "total": 4, "by_step": {"quality": 4},
        "by_filter": {"mean_word_length": 1, "non_alpha": 1, "symbol_ratio": 1, "top_ngram": 1},
    }  # fmt: skip
    check = report["accounting"]
    assert check["equation"] == (
        "input_records = kept + steps.exact.dropped + steps.near.dropped + "
        "steps.semantic.dropped + filtered.total + rejected.total + erased"
    )
    assert check["holds"] and report["kept"] == len(GOOD) and report["input_records"] == 11
    saved = json.loads((tmp_path / "reports" / "dedup.json").read_text())
    assert saved["filtered"]["by_filter"] == report["filtered"]["by_filter"]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run_info,) = client.search_runs(client.search_experiments()[0].experiment_id)
    metrics = run_info.data.metrics
    assert metrics["filtered.total"] == 4 and metrics["filtered.by_filter.top_ngram"] == 1


def test_a_disabled_filter_filters_nothing(tmp_path: Path) -> None:
    report = stage(tmp_path, "dedup.quality.filters.non_alpha.enabled=false")
    assert "non_alpha" not in report["filtered"]["by_filter"] and report["filtered"]["total"] == 3
    assert ("symbols",) in query(tmp_path, "SELECT id FROM records")
    off = tmp_path / "off"
    off.mkdir()
    report = stage(off, "dedup.quality.enabled=false")
    assert report["filtered"]["total"] == 0 and "quality" not in report["steps"]
    assert query(off, "SELECT count(*) FROM filtered") == [(0,)]
    assert report["kept"] == 11 and report["accounting"]["holds"]


def test_records_show_says_why_a_record_was_filtered(tmp_path: Path) -> None:
    stage(tmp_path)

    def show(*extra: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", "records", "show", "loop", "--root",
             str(tmp_path), *extra], capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        return proc.stdout

    text = show()
    assert "status: filtered" in text
    assert "filtered (top_ngram, response n=2): 0.875 > max 0.5" in text
    data = json.loads(show("--json"))
    assert data["status"] == "filtered" and data["kept_as"] is None
    assert data["filtered"] == {
        "filter": "top_ngram",
        "value": 0.875,
        "threshold": 0.5,
        "bound": "max",
        "detail": "response n=2",
    }
    assert "filter" not in data["record"]  # the reason is beside the record, not in it


def test_erasure_removes_a_users_filtered_records(tmp_path: Path) -> None:
    stage(tmp_path)
    store = tmp_path / "data" / "dedup" / "store.duckdb"
    assert count_user_rows(store, "mallory", "0" * 64).filtered == 1
    removed = copy_without_user(store, tmp_path / "erased.duckdb", "mallory", "0" * 64)
    assert removed.filtered == 1 and removed.total() == 1
    con = duckdb.connect(str(tmp_path / "erased.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT id FROM filtered ORDER BY id").fetchall() == [
            ("loop",), ("symbols",), ("tags",)
        ]  # fmt: skip
    finally:
        con.close()


def _mixed_text(rng: random.Random) -> str:
    """Words of several scripts and whitespace kinds, often repeated (n-gram ceilings > 0)."""
    vocab = ["a", "bb", "the", "naïve", "Straße", "请", "帮我", "ช่วย", "東京", "🙂ok", "x\u0301",
             "“so”—it", "。", "a、b", "...", "#1", "…"]  # fmt: skip
    spaces = [" ", "  ", "\n", "\t", "\u3000", "\xa0", "\u2003", "\x1c"]
    words = [rng.choice(vocab[: rng.randint(2, len(vocab))]) for _ in range(rng.randint(0, 90))]
    return "".join(w + rng.choice(spaces) for w in words).strip()


def test_batch_kernel_counts_words_and_ceilings_as_the_python_measures() -> None:
    rng = random.Random(7)
    ascii_ = [" ".join(rng.choice(["a", "b.c", "...", "#x", "1_2", "--", "\x1c", "(ok)"])
                       for _ in range(rng.randint(0, 30))) for _ in range(300)]  # fmt: skip
    texts = [_mixed_text(rng) for _ in range(500)] + ascii_ + ["", " ", "one", "buy now " * 20]
    for text, got in zip(texts, prepare(texts), strict=True):
        tokens, chars = m.words(text), len(text)
        assert got is not None and len(got) == len(tokens), text
        assert got.top_ceiling == pytest.approx(m.top_ngram_bound(tokens, 4, chars)), text
        assert got.dup_ceiling == pytest.approx(m.dup_ngram_bound(tokens, 5, chars)), text
        assert got.words == tokens
        assert got.ascii == text.isascii()
        # the same floats as the Python measures, None where they give None
        assert got.mean_word_length == m.mean_word_length(text), text
        if got.ascii:
            assert got.non_alpha == m.non_alpha_fraction(text), text
    assert prepare([None, "a b", None])[::2] == [None, None]
    measured = measure(texts)
    for i, text in enumerate(texts):
        assert measured.non_alpha_ceiling[i] >= m.non_alpha_fraction(text), text
        assert measured.symbols[i] == text.count("#") + text.count("...") + text.count("…")
        lines = [line for line in text.strip().split("\n") if line.strip()]
        if len(lines) == len(set(lines)):  # no line repeats: at most a collision flags one
            assert m.repeated_line_fraction(text) == 0.0
        else:
            assert measured.line_may_repeat[i], text


def test_the_step_in_batches_fails_the_records_the_plain_filters_fail() -> None:
    rng = random.Random(3)
    rows = [dict(r) for r in GOOD] + [row for row, _ in JUNK.values()]
    verse = "alpha beta gamma delta epsilon zeta eta theta iota kappa "
    rows.append({"prompt": "Sing.", "response": verse * 3})  # dup_ngram, not top_ngram
    rows += [{"prompt": _mixed_text(rng), "response": rng.choice([None, _mixed_text(rng)])}
             for _ in range(400)]  # fmt: skip
    records = [SimpleNamespace(prompt=r["prompt"], response=r["response"]) for r in rows]
    filters = compose([]).dedup.quality.filters
    plain = {i: f for i, r in enumerate(records) if (f := first_failure(build_filters(filters), r))}
    step = QualityFilter(filters)
    for lo in range(0, len(records), 100):
        step.observe(records[lo : lo + 100], lo)
    assert step._failed == plain
    assert {f.filter for f in plain.values()} >= {"top_ngram", "dup_ngram", "mean_word_length"}


def _real_records(t0_path: Path, hh_path: Path, every: int) -> list[SimpleNamespace]:
    import gzip

    from pipeline.dedup.shapes.hh_rlhf import hh_rlhf

    with gzip.open(t0_path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for i, line in enumerate(fh) if i % every == 0]
    with gzip.open(hh_path, "rt", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            rows += hh_rlhf(json.loads(line), hh_path.name, line_no).rows
    return [SimpleNamespace(prompt=r["prompt"], response=r.get("response")) for r in rows]


@pytest.mark.slow
def test_the_batched_step_measures_real_data_as_the_python_reference(
    t0_prompts_path: Path, hh_rlhf_path: Path
) -> None:
    """Every filter on its own (so a later filter is not hidden behind an earlier one), with
    bounds tight enough that each fails real records: the batch kernel's step fails the same
    records with the same measured values as the plain Python measures."""
    records = _real_records(t0_prompts_path, hh_rlhf_path, every=4)
    defaults = compose([]).dedup.quality.filters
    tight = {  # about a few percent of real records each, so values are compared, not just None
        "word_count": {"min": 5, "max": 300},
        "mean_word_length": {"min": 4.0, "max": 6.5},
        "top_ngram": {"max": [0.1, 0.08, 0.06]},
        "dup_ngram": {"max": [0.1, 0.09, 0.08, 0.07, 0.06, 0.05]},
        "repeated_lines": {"max": 0.05},
        "symbol_ratio": {"max": 0.02},
        "non_alpha": {"max": 0.25},
    }
    for name, bounds in tight.items():
        section = {**defaults[name], **bounds, "enabled": True}
        rules = build_filters({name: section})
        plain = {i: f for i, r in enumerate(records) if (f := first_failure(rules, r))}
        step = QualityFilter({name: section})
        for lo in range(0, len(records), 8192):
            step.observe(records[lo : lo + 8192], lo)
        assert 0 < len(plain) < len(records) / 2, (name, len(plain))
        assert step._failed == plain, name
