"""Readers under hostile input: broken JSON arrays, odd suffixes, invisible prompts, bare CRs.

Every row of an input ends as a read row or a counted, stored rejection: a malformed array
element costs that element only, where the text allows it.
"""

from __future__ import annotations

import gzip
import json
import re
import tempfile
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cli import main as cli_main
from pipeline.config import compose, to_yaml
from pipeline.dedup.collect import collect
from pipeline.dedup.validate import FieldMap, Invalid, ValidateSettings, to_record
from pipeline.errors import UserInputError
from pipeline.io import text_window
from pipeline.io.readers import ReadStats, dataset_files, read_dataset, read_file, scan_dataset

FIELDS = FieldMap.from_cfg({"name": "t"})
LIMITS = ValidateSettings()


def _rows(path: Path, limit: int = 10_000) -> tuple[list, ReadStats]:
    stats = ReadStats()
    return list(read_file(path, path.name, limit, stats)), stats


def _summary(rows: list) -> list[tuple[int, str | None, str | None]]:
    """(position, reason, prompt) per row."""
    return [
        (r.line, r.reason, r.value.get("prompt") if isinstance(r.value, dict) else None)
        for r in rows
    ]


# ---- 1. a malformed JSON array element costs that element, not the rest -----------------

GOOD = '{"prompt": "a"}'
TAIL = '{"prompt": "c"}, {"prompt": "d"}'
# Each broken element sits between GOOD and TAIL; GOOD and TAIL are read, whatever it is.
BROKEN = {
    "nan": '{"prompt": NaN}',
    "bare word": '{"prompt": yes}',
    "missing colon": '{"prompt" "b"}',
    "trailing comma": '{"prompt": "b",}',
    "missing close brace": '{"prompt": "b"',
    "extra close brace": '{"prompt": "b"}}',
    "unterminated string": '{"prompt": "b}',
    "unterminated nested": '{"prompt": "b", "metadata": {"k": [1, 2}',
    "junk after object": '{"prompt": "b"} junk',
    "lone quote": '"',
    "brace in string, broken after": '{"prompt": "x, {\\"a\\": 1}, y", "q": tru}',
    "list of objects, broken after": '{"prompt": "b", "tags": [{"a": 1}, {"b": 2}], "q": -}',
    "missing colon, list of objects": '{"prompt" "b", "tags": [{"a": 1}, {"b": 2}]}',
    "missing comma between members": '{"prompt": "b" "tags": [{"a": 1}, {"b": 2}]}',
    "stray backslash": '{"prompt": "b", \\ "q": 1}',
}


@pytest.mark.parametrize("chunk", [7, 1 << 20])
@pytest.mark.parametrize("pretty", [False, True])
@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_malformed_array_element_is_rejected_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, pretty: bool, chunk: int
) -> None:
    monkeypatch.setattr(text_window, "CHUNK_CHARS", chunk)  # elements span many reads
    sep = ",\n  " if pretty else ", "
    path = tmp_path / "a.json"
    path.write_text("[" + sep.join([GOOD, BROKEN[kind], TAIL.replace(", ", sep)]) + "]\n")
    rows, stats = _rows(path)
    assert _summary(rows) == [(1, None, "a"), (2, "invalid_json", None), (3, None, "c"),
                              (4, None, "d")]  # fmt: skip
    assert stats.lines == 4
    assert rows[1].detail.startswith("invalid JSON in array element 2")
    assert BROKEN[kind] in rows[1].raw_text()


def test_missing_comma_costs_the_element_before_it(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[{"prompt": "a"} {"prompt": "b"}, {"prompt": "c"}]')
    rows, _ = _rows(path)
    assert _summary(rows) == [(1, "invalid_json", None), (2, None, "b"), (3, None, "c")]
    assert "expected ',' or ']'" in rows[0].detail


def test_unrecoverable_rest_is_one_counted_row(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    text = '[{"prompt": "a"}, {"prompt": "b} , {"prompt": "c" ' + "x" * 5000
    path.write_text(text)
    rows, stats = _rows(path)
    assert _summary(rows) == [(1, None, "a"), (2, "invalid_json", None)]
    assert stats.lines == 2
    rest = len(text) - text.index('{"prompt": "b')
    assert f"the rest of the file ({rest} characters)" in rows[1].detail
    assert rows[1].raw_text().startswith('{"prompt": "b}')


def test_text_after_the_closing_bracket_is_rejected_and_read_where_possible(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.json"
    path.write_text('[{"prompt": "a"}] trailing, {"prompt": "b"}]\n')
    rows, _ = _rows(path)
    assert _summary(rows) == [(1, None, "a"), (2, "invalid_json", None), (3, None, "b")]
    assert "after the array's closing ']'" in rows[1].detail
    path.write_text('[{"prompt": "a"}]\n\n  \n')
    assert _summary(_rows(path)[0]) == [(1, None, "a")]


def test_jsonl_named_json_says_so(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')
    rows, _ = _rows(path)
    assert [r.reason for r in rows] == ["invalid_json"]
    assert ".jsonl" in rows[0].detail


def test_unclosed_array_is_a_counted_row(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[{"prompt": "a"}, {"prompt": "b"}')
    rows, stats = _rows(path)
    assert _summary(rows) == [(1, None, "a"), (2, None, "b"), (3, "invalid_json", None)]
    assert "ends before the array's closing ']'" in rows[2].detail and stats.lines == 3


def test_recovery_holds_bounded_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 24 MB after a broken element that no later element can be recovered from: it is
    # scanned in chunks, never held whole.
    monkeypatch.setattr(text_window, "CHUNK_CHARS", 1 << 16)
    path = tmp_path / "a.json"
    with path.open("w") as fh:
        fh.write('[{"prompt": "a"}, {"prompt": "b, ')
        for _ in range(24):
            fh.write(("z" * 4000 + ', {"x": z') * 256)  # element starts that never parse
    tracemalloc.start()
    try:
        rows, _ = _rows(path, limit=1 << 16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert _summary(rows) == [(1, None, "a"), (2, "invalid_json", None)]
    assert peak < 4_000_000, peak


# Records whose texts may hold JSON-looking punctuation, and ways to corrupt an element.
texts = st.text(alphabet=st.sampled_from([*'ab ,{}[]:"\\\n\r\t', "é", "😀"]), max_size=12)
records = st.fixed_dictionaries(
    {"prompt": texts},
    optional={"quality": st.integers(0, 5), "tags": st.lists(texts, max_size=2),
              "metadata": st.dictionaries(st.sampled_from("xy"), texts, max_size=2),
              "turns": st.lists(st.fixed_dictionaries({"t": texts}), max_size=2)},
)  # fmt: skip


@st.composite
def corrupted(draw: st.DrawFn, text: str) -> str:
    kind = draw(st.sampled_from(["cut", "token", "insert", "delete", "dup"]))
    if kind == "token":  # structure kept: only this element is lost
        return text.replace(": ", ': NaN, "k": ', 1)
    at = draw(st.integers(0, len(text)))
    if kind == "cut":
        return text[:at]
    if kind == "insert":
        return text[:at] + draw(st.sampled_from([*'"{}[],x\\'])) + text[at:]
    if kind == "delete":
        return text[:at] + text[at + 1 :]
    return text[:at] + text  # a prefix repeated


@st.composite
def broken_arrays(draw: st.DrawFn) -> tuple[list[dict], list[str], set[int], str]:
    values = draw(st.lists(records, min_size=1, max_size=8))
    elements = [json.dumps(v, ensure_ascii=draw(st.booleans())) for v in values]
    bad = set(draw(st.lists(st.integers(0, len(values) - 1), min_size=1, max_size=3)))
    texts_ = [draw(corrupted(e)) if i in bad else e for i, e in enumerate(elements)]
    sep = draw(st.sampled_from([",", ", ", ",\n", ",\r\n  "]))
    return values, texts_, bad, "[" + sep.join(texts_) + "]"


def _core(text: str) -> str:
    return re.sub(r"[\s,\]]", "", text)


def _check_rows(rows: list, case: tuple) -> None:
    """Every element of `case` is read or inside a rejected row; nothing else is lost."""
    values, elements, bad, text = case
    assert [r.line for r in rows] == list(range(1, len(rows) + 1))
    # Nothing vanishes: the rows' texts, in order, are the whole array but its punctuation.
    assert _core("".join(r.raw_text() for r in rows)) == _core(text[1:])
    rejected = _core("".join(r.raw_text() for r in rows if r.reason is not None))
    read = [r.value for r in rows if r.reason is None]
    for i, value in enumerate(values):
        if i in bad:
            continue
        assert value in read or _core(elements[i]) in rejected, (i, value)
    if all(elements[i].count("NaN") for i in bad):  # structure kept: exact recovery
        assert read == [v for i, v in enumerate(values) if i not in bad]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=broken_arrays(), chunk=st.sampled_from([3, 64, 1 << 20]))
def test_every_element_is_read_or_rejected(case: tuple, chunk: int) -> None:
    text_window.CHUNK_CHARS, saved = chunk, text_window.CHUNK_CHARS
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "a.json"
            path.write_bytes(case[3].encode("utf-8"))
            rows, stats = _rows(path)
    finally:
        text_window.CHUNK_CHARS = saved
    assert stats.lines == len(rows)
    _check_rows(rows, case)


# ---- through the whole dedup stage ------------------------------------------------------


@pytest.fixture(scope="module")
def base_cfg(tmp_path_factory: pytest.TempPathFactory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    return compose([f"tracking.uri={uri}", "dedup.near.enabled=false"])


@pytest.mark.slow
@settings(
    max_examples=10, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)  # fmt: skip
@given(case=broken_arrays())
def test_broken_arrays_account_through_the_stage(base_cfg, case: tuple) -> None:
    from pipeline.stages.dedup import run

    text = case[3]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "raw").mkdir()
        (root / "raw" / "a.json").write_text(text, encoding="utf-8")
        cfg = base_cfg.copy()
        cfg.data.path = str(root / "raw")
        rows = list(read_dataset(dataset_files(root / "raw"), 2_000_000, ReadStats()))
        report = run(cfg, root)
    _check_rows(rows, case)
    assert report["accounting"]["holds"]
    assert report["input_lines"] == report["input_records"] == len(rows)
    limits = ValidateSettings.from_cfg(cfg.dedup.validate)
    got = collect(rows, FieldMap.from_cfg(cfg.data), limits)
    assert report["rejected"]["total"] == len(got.rejections)
    # A record the quality filters drop (": : :" is all symbols) is filtered, not lost.
    filtered = report["filtered"]["total"]
    assert report["kept"] + report["exact_duplicates"] + filtered == len(got.records)


# ---- 2. suffixes without case; files not read are named ---------------------------------


def test_suffixes_match_without_case(tmp_path: Path) -> None:
    (tmp_path / "UPPER.JSONL").write_text('{"prompt": "upper"}\n')
    with gzip.open(tmp_path / "Data.Json.GZ", "wt") as fh:
        fh.write('[{"prompt": "gz array"}]')
    (tmp_path / "x.CSV").write_text("prompt\ncsv row\n")
    pq.write_table(pa.table({"prompt": ["parquet row"]}), tmp_path / "y.PARQUET")
    (tmp_path / "z.JsonL.Gz").write_bytes(gzip.compress(b'{"prompt": "mixed"}\n'))
    files = dataset_files(tmp_path)
    assert [rel for _, rel in files] == [
        "Data.Json.GZ", "UPPER.JSONL", "x.CSV", "y.PARQUET", "z.JsonL.Gz",
    ]  # fmt: skip
    rows = list(read_dataset(files, 1000, ReadStats()))
    assert [(r.reason, r.value["prompt"]) for r in rows] == [
        (None, "gz array"), (None, "upper"), (None, "csv row"), (None, "parquet row"),
        (None, "mixed"),
    ]  # fmt: skip
    assert dataset_files(tmp_path / "UPPER.JSONL") == [(tmp_path / "UPPER.JSONL", "UPPER.JSONL")]


def test_files_not_read_are_named_with_a_reason(tmp_path: Path) -> None:
    for name in ("a.jsonl", "notes.txt", ".hidden.jsonl", "sub/b.csv", "sub/.c.jsonl",
                 "sub/d.jsonl.bak", ".git/objects/x", ".git/HEAD"):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "broken.jsonl").symlink_to(tmp_path / "missing.jsonl")
    scan = scan_dataset(tmp_path)
    assert [rel for _, rel in scan.files] == ["a.jsonl", "sub/b.csv"]
    assert scan.skipped == [
        {"path": ".git/", "reason": "hidden directory (2 files)"},
        {"path": ".hidden.jsonl", "reason": "hidden file"},
        {"path": "broken.jsonl", "reason": "not a regular file (a broken link?)"},
        {"path": "notes.txt", "reason": "unsupported format"},
        {"path": "sub/.c.jsonl", "reason": "hidden file"},
        {"path": "sub/d.jsonl.bak", "reason": "unsupported format"},
    ]
    with pytest.raises(UserInputError, match="unsupported format"):
        scan_dataset(tmp_path / "notes.txt")


def test_stage_report_and_cli_name_skipped_files(
    tmp_path: Path, base_cfg, capsys: pytest.CaptureFixture
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "A.JSONL").write_text('{"prompt": "kept"}\n')
    (raw / "notes.txt").write_text("not data\n")
    cfg = base_cfg.copy()
    cfg.data.path = str(raw)
    (tmp_path / "params.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    assert cli_main(["dedup", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 records in: 1 kept" in out
    assert "1 file not read: notes.txt (unsupported format)" in out
    report = json.loads((tmp_path / "reports" / "dedup.json").read_text())
    assert report["skipped_files"] == [{"path": "notes.txt", "reason": "unsupported format"}]


# ---- 3. invisible characters are empty --------------------------------------------------

INVISIBLE = ["\u200b", "\ufeff", "\u200c", "\u200d", "\u2060", "\u00ad", "\u180e", "\u2062",
             "\u034f", "\u3164", "\ufe0f", "\x00", " \u200b\t\u00a0\u3000\n"]  # fmt: skip


@pytest.mark.parametrize("prompt", INVISIBLE, ids=[f"U+{ord(c[0]):04X}" for c in INVISIBLE])
def test_prompt_of_invisible_characters_is_empty(prompt: str) -> None:
    with pytest.raises(Invalid) as exc:
        to_record({"prompt": prompt * 3}, "f", 1, FIELDS, LIMITS)
    assert exc.value.reason == "empty_prompt"
    assert "invisible" in exc.value.detail


def test_invisible_characters_in_real_text_are_kept() -> None:
    prompt = "\ufeffzero\u200bwidth\u00ad join\u200d"
    record = to_record({"prompt": prompt, "response": "\u200b"}, "f", 1, FIELDS, LIMITS)
    assert record.prompt == prompt  # nothing is stripped from a text that has content
    assert record.response == "\u200b"  # an empty response is allowed, invisible ones too
    # Visible, though alone: a combining mark, a braille blank, a prepended number sign.
    for visible in ("\u0301", "\u2800", "a", "\U0001f600", "\u0600"):
        assert to_record({"prompt": visible}, "f", 1, FIELDS, LIMITS).prompt == visible


def test_invisible_prompt_is_rejected_in_every_format(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"prompt": "\\u200b\\ufeff"}\n{"prompt": "ok"}\n')
    got = collect(read_dataset(dataset_files(tmp_path), 1000, ReadStats()), FIELDS, LIMITS)
    assert [r.reason for r in got.rejections] == ["empty_prompt"]
    assert [r.prompt for r in got.records] == ["ok"]


# ---- 4. a bare CR is a line break -------------------------------------------------------


def test_bare_cr_separates_jsonl_records(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"prompt": "one"}\r{"prompt": "two"}\r\r{"prompt": "three"}\r')
    rows, stats = _rows(path)
    assert _summary(rows) == [(1, None, "one"), (2, None, "two"), (4, None, "three")]
    assert stats.lines == 4 and stats.blank == 1


ENDINGS = {"LF": [b"\n"], "CRLF": [b"\r\n"], "CR": [b"\r"], "mixed": [b"\n", b"\r\n", b"\r"]}
line_texts = st.one_of(
    st.builds(lambda s: json.dumps({"prompt": s}).encode(), st.text(min_size=1, max_size=30)),
    st.sampled_from([b"{broken", b"", b"  ", b"[1]", b'\xef\xbb\xbf{"prompt": "bom"}']),
    st.integers(1, 120).map(lambda n: b'{"prompt": "' + b"y" * n + b'"}'),  # maybe oversize
)


def editor_lines(data: bytes) -> list[bytes]:
    """The lines an editor shows: a line ends at LF, CRLF or a lone CR."""
    lines = re.split(rb"\r\n|\r|\n", data)
    return lines[:-1] if lines and lines[-1] == b"" else lines


@settings(max_examples=200, deadline=None)
@given(
    body=st.lists(line_texts, max_size=12),
    convention=st.sampled_from(sorted(ENDINGS)),
    ends=st.randoms(use_true_random=False),
    final=st.booleans(),
    limit=st.sampled_from([40, 64, 100_000]),
    gz=st.booleans(),
)
def test_line_numbers_match_an_editor(
    body: list[bytes], convention: str, ends, final: bool, limit: int, gz: bool
) -> None:
    data = b"".join(line + ends.choice(ENDINGS[convention]) for line in body)
    if body and not final:
        data = data.rstrip(b"\r\n")
    expected = []
    for number, line in enumerate(editor_lines(data), start=1):
        if len(line) > limit:  # the line's bytes without its line break
            expected.append((number, "oversize_line"))
            continue
        line = line.removeprefix(b"\xef\xbb\xbf")
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            expected.append((number, "invalid_json"))
            continue
        expected.append((number, None if isinstance(value, dict) else "not_an_object"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("a.jsonl.gz" if gz else "a.jsonl")
        path.write_bytes(gzip.compress(data) if gz else data)
        rows, stats = _rows(path, limit=limit)
    assert [(r.line, r.reason) for r in rows] == expected
    assert stats.lines == len(editor_lines(data))


def test_crlf_split_across_reads_is_one_line_break(tmp_path: Path) -> None:
    # With a limit of 16 bytes the reader takes 17 at a time: the CR of this CRLF is the
    # 17th byte of the first read and its LF the first byte of the next.
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"prompt": "xy"}\r\n{"prompt": "z"}\r\n')
    rows, stats = _rows(path, limit=16)
    assert _summary(rows) == [(1, None, "xy"), (2, None, "z")] and stats.lines == 2
