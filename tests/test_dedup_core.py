"""The pure core: validation, normalisation, keep policy, exact dedup, hh-rlhf turns."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from pipeline.dedup.collect import collect
from pipeline.dedup.exact import exact_duplicates
from pipeline.dedup.ids import rid_of
from pipeline.dedup.normalize import normalize
from pipeline.dedup.policy import priority
from pipeline.dedup.shapes import ShapeReader
from pipeline.dedup.shapes.hh_rlhf import hh_rlhf, split_turns
from pipeline.dedup.validate import FieldMap, Invalid, ValidateSettings, to_record
from pipeline.errors import UserInputError
from pipeline.io.readers import RawRow
from pipeline.record import Record

SETTINGS = ValidateSettings(max_field_chars=50, max_line_bytes=1000)
FIELDS = FieldMap.from_cfg(
    {"name": "ds", "fields": {"label": "task"}, "record_defaults": {"origin": "synthetic"}}
)


def _record(row: dict, from_text: bool = False) -> Record:
    return to_record(row, "f.jsonl", 7, FIELDS, SETTINGS, from_text)


def test_mapping_defaults_and_metadata() -> None:
    r = _record({"prompt": "hi", "task": "qa", "label": "old", "extra": [1]})
    assert r.label == "qa" and r.id == "f.jsonl:7" and r.rid == rid_of("f.jsonl:7")
    assert r.origin == "synthetic" and r.source == "ds"
    assert r.metadata == {"label": "old", "extra": [1]}  # the unmapped column is kept
    assert 0 <= r.rid < 2**63


def test_csv_strings_are_coerced() -> None:
    r = _record(
        {"prompt": "p", "turn": "2", "quality": "4.5", "created_at": "2024-05-01T10:00:00+02:00",
         "tags": "a, b", "metadata": '{"k": 1}', "response": ""},
        from_text=True,
    )  # fmt: skip
    assert (r.turn, r.quality, r.tags, r.metadata) == (2, 4.5, ["a", "b"], {"k": 1})
    assert r.created_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert _record({"prompt": "p", "tags": '["x"]'}, from_text=True).tags == ["x"]


def test_blank_link_ids_link_nothing() -> None:
    # An empty CSV cell once put every session-less row of a file in one conversation "".
    r = _record({"prompt": "p", "session_id": "", "user_id": " ", "parent_id": ""}, True)
    assert (r.session_id, r.user_id, r.parent_id) == (None, None, None)
    assert _record({"prompt": "p", "session_id": "s1"}).session_id == "s1"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({}, "missing_prompt"),
        ({"prompt": "  \n"}, "empty_prompt"),
        ({"prompt": 12345}, "wrong_type"),
        ({"prompt": "p", "response": ["x"]}, "wrong_type"),
        ({"prompt": "p", "quality": "5"}, "wrong_type"),
        ({"prompt": "p", "quality": True}, "wrong_type"),
        ({"prompt": "p", "quality": 10**400}, "wrong_type"),
        ({"prompt": "p", "turn": 2**40}, "wrong_type"),
        ({"prompt": "p", "tags": "a"}, "wrong_type"),
        ({"prompt": "p", "metadata": [1]}, "wrong_type"),
        ({"prompt": "p", "created_at": "2024-13-45T99:00:00Z"}, "bad_timestamp"),
        ({"prompt": "p", "created_at": 1e20}, "bad_timestamp"),
        ({"prompt": "p", "origin": "human"}, "bad_origin"),
        ({"prompt": "x" * 51}, "oversize_field"),
        ({"prompt": "p", "blob": "y" * 60}, "oversize_field"),
    ],
)
def test_invalid_rows_name_their_reason(row: dict, reason: str) -> None:
    with pytest.raises(Invalid) as exc:
        _record(row)
    assert exc.value.reason == reason


def test_config_errors_name_the_key() -> None:
    with pytest.raises(UserInputError, match=r"data.fields.colour"):
        FieldMap.from_cfg({"fields": {"colour": "c"}})
    with pytest.raises(UserInputError, match=r"data.record_defaults.origin"):
        FieldMap.from_cfg({"record_defaults": {"origin": "human"}})
    with pytest.raises(UserInputError, match=r"data.format"):
        ShapeReader("nope", FIELDS)
    with pytest.raises(UserInputError, match=r"dedup.keep_policy"):
        priority([], ["newest"])


def test_normalize() -> None:
    assert normalize("  Ｈｅｌｌｏ\t\nWORLD  ") == "hello world"
    assert normalize("Straße") == normalize("STRASSE")
    assert normalize(None) == ""


def _rec(i: int, **kw) -> Record:
    return Record(rid=i, id=str(i), prompt="p", **kw)


def test_keep_policy_order_and_exact_survivor() -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    records = [
        _rec(0, quality=None),
        _rec(1, quality=3.0, origin="synthetic"),
        _rec(2, quality=3.0, origin="real", created_at=t.replace(month=3)),
        _rec(3, quality=3.0, origin="real", created_at=t),
        _rec(4, quality=1.0),
    ]
    policy = ["quality_desc", "origin_real_first", "created_at_asc", "input_order"]
    ranks = priority(records, policy)
    assert list(np.argsort(ranks)) == [3, 2, 1, 4, 0]
    assert list(np.argsort(priority(records, ["input_order"]))) == [0, 1, 2, 3, 4]
    pairs = exact_duplicates(["a", "a", "b", "a", "b"], ranks)
    assert pairs == [(0, 3), (1, 3), (4, 2)]


HH = {
    "chosen": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Address: 1 Main St?"
    "\n\nHuman: again\n\nAssistant: Human: no\n\nAssistant: Sure.",
    "rejected": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Address: 1 Main St?"
    "\n\nHuman: again\n\nAssistant: Human: no\n\nAssistant: Go away.",
}


def test_hh_rlhf_turns_and_preference() -> None:
    assert split_turns("\n\nHuman: a\n\nWord: b\n\nAssistant: c") == [
        ("Human", "a\n\nWord: b"),
        ("Assistant", "c"),
    ]
    out = hh_rlhf(HH, "hh.jsonl", 3)
    assert [(r["id"], r["parent_id"], r["turn"]) for r in out.rows] == [
        ("hh.jsonl:3:1", None, 1),
        ("hh.jsonl:3:2", "hh.jsonl:3:1", 2),
    ]
    assert out.rows[1]["prompt"] == "Address: 1 Main St?\n\nagain"  # consecutive Human merged
    assert out.rows[1]["response"] == "Human: no\n\nSure."
    assert out.rows[1]["metadata"]["non_alternating"] is True
    assert out.preferences == [("hh.jsonl:3:2", "Sure.", "Go away.")]
    assert {r["session_id"] for r in out.rows} == {"hh.jsonl:3"}


def test_hh_rlhf_context_mismatch_and_empty_reply() -> None:
    pair = {"chosen": "\n\nHuman: a\n\nAssistant: ", "rejected": "\n\nHuman: b\n\nAssistant: x"}
    out = hh_rlhf(pair, "hh", 1)
    assert out.rows[0]["response"] == "" and out.preferences == []
    assert "preference_skipped" in out.rows[0]["metadata"]
    with pytest.raises(Invalid):
        hh_rlhf({"chosen": 1, "rejected": "x"}, "hh", 2)


def test_collect_rejects_duplicate_ids_and_keeps_going() -> None:
    rows = [
        RawRow("f", 1, "", {"id": "a", "prompt": "x"}),
        RawRow("f", 2, "", {"id": "a", "prompt": "y"}),
        RawRow("f", 3, "{", reason="invalid_json", detail="bad"),
        RawRow("f", 4, "", {"id": 5, "prompt": "z"}),
        RawRow("f", 5, "", {"id": 6, "prompt": ""}),
    ]
    got = collect(rows, FIELDS, SETTINGS)
    assert [r.id for r in got.records] == ["a", "5"]
    assert [(r.line, r.reason, r.record_id) for r in got.rejections] == [
        (2, "duplicate_id", "a"),
        (3, "invalid_json", "f:3"),
        (5, "empty_prompt", "6"),
    ]
    assert "already used at f:1" in got.rejections[0].detail
    assert got.input_records == 5


def test_collect_transform_counts_turns() -> None:
    rows = [RawRow("hh", 1, "", HH), RawRow("hh", 2, "", {"chosen": None, "rejected": "x"})]
    got = collect(rows, FIELDS, SETTINGS, ShapeReader("hh_rlhf", FIELDS))
    assert got.input_records == 3 and len(got.records) == 2
    assert got.rejections[0].reason == "invalid_transcript"
    assert got.preferences == [("hh:1:2", "Sure.", "Go away.", "ds")]


def test_collect_rejects_rid_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    # A real 63-bit collision is too rare to find; a constant hash exercises the same branch.
    monkeypatch.setattr("pipeline.dedup.validate.rid_of", lambda record_id: 42)
    rows = [
        RawRow("f", 1, "", {"id": "a", "prompt": "x"}),
        RawRow("f", 2, "", {"id": "b", "prompt": "y"}),
    ]
    got = collect(rows, FIELDS, SETTINGS)
    assert [r.id for r in got.records] == ["a"]
    assert got.rejections[0].reason == "rid_collision" and "'a'" in got.rejections[0].detail
