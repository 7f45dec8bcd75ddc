"""The bundled sample: deterministic, committed as generated, and its ground truth is exact."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path

import pytest

from pipeline.sample import write_sample, write_truth
from pipeline.sample.__main__ import main
from pipeline.sample.read import raw_objects, valid_by_id
from pipeline.sample.similarity import joined, shingles, words

REPO = Path(__file__).resolve().parent.parent
RAW = REPO / "data" / "raw"
TRUTH = REPO / "tests" / "data" / "sample_truth.json"


def _tree(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    assert main(["--out", str(out / "raw"), "--truth", str(out / "truth.json")]) == 0
    return out


def test_generation_is_byte_identical(generated: Path, tmp_path: Path) -> None:
    again = write_sample(tmp_path / "raw")
    write_truth(tmp_path / "truth.json", again)
    assert _tree(tmp_path / "raw") == _tree(generated / "raw")
    assert (tmp_path / "truth.json").read_bytes() == (generated / "truth.json").read_bytes()


def test_committed_sample_equals_fresh_generation(generated: Path) -> None:
    assert _tree(RAW) == _tree(generated / "raw"), "run `python -m pipeline.sample` and commit"
    assert TRUTH.read_bytes() == (generated / "truth.json").read_bytes()


def test_other_seed_gives_other_data(tmp_path: Path) -> None:
    write_sample(tmp_path, seed=1, n_records=500)
    assert _tree(tmp_path)["chat_2024h1.jsonl"] != _tree(RAW)["chat_2024h1.jsonl"]


def test_sample_is_small_and_has_every_format() -> None:
    names = sorted(p.name for p in RAW.iterdir())
    assert {Path(n).suffix for n in names} == {".jsonl", ".gz", ".csv", ".json", ".parquet"}
    assert sum(p.stat().st_size for p in RAW.iterdir()) < 3_000_000
    assert (RAW / "annotators.jsonl").read_bytes().startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in (RAW / "chat_2024h2.jsonl").read_bytes()
    assert gzip.decompress((RAW / "synthetic.jsonl.gz").read_bytes())  # a valid gzip stream


def test_truth_counts_and_malformed_positions() -> None:
    truth = json.loads(TRUTH.read_text())
    objs, lines = raw_objects(RAW)
    counts = truth["counts"]
    bad_lines = [r for r in truth["rejected"] if "line" in r]
    assert len(objs) + sum(r["reason"] in ("invalid_json", "invalid_utf8") for r in bad_lines) == (
        counts["input_rows"] - sum(r["reason"] == "not_an_object" for r in bad_lines)
    )
    assert counts["input_rows"] == counts["valid"] + counts["rejected"]
    assert (
        counts["kept"] == counts["valid"] - counts["exact_duplicates"] - counts["near_duplicates"]
    )
    assert len(counts["labels"]) == 7 and min(counts["labels"].values()) > 250
    for r in bad_lines:
        raw = lines[(r["file"], r["line"])]
        if r["reason"] == "invalid_utf8":
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
        elif r["reason"] == "oversize":
            assert len(json.loads(raw)["prompt"]) > 100_000
    for where in truth["records_without_id"]:
        name, line = where.rsplit(":", 1)
        assert "id" not in json.loads(lines[(name, int(line))])
    reasons = {r["reason"] for r in truth["rejected"]}
    assert {
        "invalid_json",
        "invalid_utf8",
        "missing_prompt",
        "empty_prompt",
        "wrong_type",
    } <= reasons
    assert {"bad_timestamp", "oversize", "not_an_object"} <= reasons


def _valid_by_id() -> dict[str, dict]:
    return valid_by_id(RAW, json.loads(TRUTH.read_text()))


def test_planted_duplicates_are_what_the_truth_says() -> None:
    truth = json.loads(TRUTH.read_text())
    recs = _valid_by_id()

    def key(r: dict) -> tuple[str, str]:
        return " ".join(words(r["prompt"])), " ".join(words(r.get("response") or ""))

    for dup in truth["exact_duplicates"]:
        copy, original = recs[dup["id"]], recs[dup["duplicate_of"]]
        assert key(copy) == key(original)
        if dup["variant"] != "identical":
            assert (copy["prompt"], copy["response"]) != (original["prompt"], original["response"])
    for dup in truth["near_duplicates"]:
        assert 0.85 <= dup["jaccard"] <= 0.95


@pytest.mark.slow
def test_no_unplanned_duplicates_above_threshold() -> None:
    """Records in different planted clusters are never near-duplicates (Jaccard < 0.8)."""
    truth = json.loads(TRUTH.read_text())
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for dup in truth["exact_duplicates"] + truth["near_duplicates"]:
        parent[find(dup["id"])] = find(dup["duplicate_of"])
    recs = list(_valid_by_id().values())
    for text_of in (lambda r: joined(r["prompt"], r.get("response")), lambda r: r["prompt"]):
        postings: dict[tuple, list[int]] = defaultdict(list)
        sizes: list[int] = []
        worst = 0.0
        for i, rec in enumerate(recs):
            sh = shingles(text_of(rec))
            sizes.append(len(sh))
            shared: dict[int, int] = defaultdict(int)
            for s in sh:
                for j in postings[s]:
                    shared[j] += 1
                postings[s].append(i)
            for j, inter in shared.items():
                if find(recs[j]["id"]) != find(rec["id"]):
                    worst = max(worst, inter / (len(sh) + sizes[j] - inter))
        assert worst < 0.8
