"""Export shapes row by row: detection by keys, each reader, and the field map."""

from __future__ import annotations

import pytest

from pipeline.dedup.collect import collect
from pipeline.dedup.shapes import ShapeReader
from pipeline.dedup.validate import FieldMap, ValidateSettings
from pipeline.io.readers import RawRow

SETTINGS = ValidateSettings(max_field_chars=10_000, max_line_bytes=100_000)
FIELDS = FieldMap.from_cfg({"name": "ds"})
AUTO = ShapeReader("auto", FIELDS)
CHAT = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


@pytest.mark.parametrize(
    ("row", "shape"),
    [
        ({"messages": CHAT}, "chat"),
        ({"conversations": [{"from": "human", "value": "hi"}]}, "sharegpt"),
        ({"instruction": "do", "input": "", "output": "done"}, "alpaca"),
        ({"prompt": "p", "completion": "c"}, "prompt_completion"),
        ({"prompt": "p", "chosen": "a", "rejected": "b"}, "preference"),
        ({"chosen": CHAT, "rejected": CHAT}, "preference"),  # TRL's implicit prompt
        ({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "x"}, "hh_rlhf"),
        ({"prompt": "p", "response": "r", "completion": "c"}, "flat"),
        ({"id": 1, "response": "r"}, "flat"),  # a record missing its prompt: missing_prompt
        ({"messages": "not a list"}, "chat"),  # chat's reader says what is wrong
        ({"text": "hello"}, None),
    ],
)
def test_auto_detects_each_shape_by_its_keys(row: dict, shape: str | None) -> None:
    assert AUTO.shape_of(row) == shape


def _collect(rows: list[dict], reader: ShapeReader = AUTO):
    return collect([RawRow("f.jsonl", i, "", r) for i, r in enumerate(rows, 1)], FIELDS,
                   SETTINGS, reader)  # fmt: skip


def test_explicit_format_overrides_and_field_map_still_renames() -> None:
    got = _collect([{"prompt": "p", "completion": "c"}], ShapeReader("flat", FIELDS))
    assert got.records[0].response is None and got.records[0].metadata == {"completion": "c"}
    fields = FieldMap.from_cfg({"name": "ds", "fields": {"prompt": "question", "label": "task"}})
    reader = ShapeReader("auto", fields)
    rows = [RawRow("f", 1, "", {"question": "q?", "completion": "a.", "task": "qa"})]
    record = collect(rows, fields, SETTINGS, reader).records[0]
    assert (record.prompt, record.response, record.label) == ("q?", "a.", "qa")


def test_single_record_shapes() -> None:
    got = _collect([
        {"instruction": "Translate", "input": "chat", "output": "cat", "id": "a1"},
        {"instruction": "Say hi", "output": "hi", "system": "be kind"},
        {"id": "p1", "prompt": "Best?", "chosen": "This.", "rejected": "That.", "user": "u"},
    ])  # fmt: skip
    a1, a2, p1 = got.records
    assert (a1.id, a1.prompt, a1.response) == ("a1", "Translate\n\nchat", "cat")
    assert a2.prompt == "Say hi" and a2.metadata == {"system": "be kind"}
    assert (p1.prompt, p1.response, p1.metadata) == ("Best?", "This.", {"user": "u"})
    assert got.preferences == [("p1", "This.", "That.", "ds")]


def test_chat_turns_links_and_conversation_fields() -> None:
    row = {"id": "c7", "user": "alice", "created": 1_700_000_000, "metadata": {"app": "web"},
           "messages": [{"role": "developer", "content": "Be terse."}, *CHAT,
                        {"role": "user", "content": "bye"}]}  # fmt: skip
    got = _collect([row])
    first, second = got.records
    assert [(r.id, r.session_id, r.parent_id, r.turn) for r in got.records] == [
        ("c7:1", "c7", None, 1), ("c7:2", "c7", "c7:1", 2)]  # fmt: skip
    assert (second.prompt, second.response) == ("bye", None)  # awaiting a reply
    assert first.user_id == "alice" and first.created_at.year == 2023
    assert first.metadata == {"app": "web", "system": "Be terse.", "turns": 2}
    assert got.input_records == 2


def test_session_is_a_stable_hash_without_an_id() -> None:
    one, two = _collect([{"messages": CHAT}]), _collect([{"messages": CHAT}])
    assert one.records[0].session_id == two.records[0].session_id
    assert one.records[0].session_id.startswith("conv-")
    other = _collect([{"messages": [*CHAT[:1], {"role": "assistant", "content": "hey"}]}])
    assert other.records[0].session_id != one.records[0].session_id


def test_unknown_shape_names_its_keys() -> None:
    got = _collect([{"text": "hello", "score": 1}])
    (rejection,) = got.rejections
    assert rejection.reason == "unknown_shape" and "'text', 'score'" in rejection.detail
