"""One-record shapes: Alpaca, prompt/completion, and preference pairs (DPO datasets).

Each reads its own columns into `prompt` and `response`; the row's other columns go
through the field map as a flat row's would. A prompt or reply given as a list of messages
(TRL's conversational form) is a conversation: its turns are records as for `chat`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.dedup.ids import default_id
from pipeline.dedup.shapes.base import Expanded, by_field
from pipeline.dedup.shapes.conversation import expand, session_of, top_fields
from pipeline.dedup.shapes.messages import ASSISTANT, read_message, role_of
from pipeline.dedup.validate import FieldMap, Invalid


def alpaca(value: Mapping[str, Any], file: str, line: int, fields: FieldMap) -> Expanded:
    """`instruction` (+ `input`, after a blank line) -> prompt; `output` -> response."""
    instruction, extra = value.get("instruction"), value.get("input")
    for name, text in (("instruction", instruction), ("input", extra)):
        if text is not None and not isinstance(text, str):
            raise Invalid("wrong_type", f"field {name!r}: expected a string, got "
                          f"{type(text).__name__}")  # fmt: skip
    values = by_field(value, fields, ("instruction", "input", "output"))
    prompt = instruction if not extra else f"{instruction}\n\n{extra}"
    return Expanded([{**values, "prompt": prompt, "response": value.get("output")}])


def prompt_completion(value: Mapping[str, Any], file: str, line: int, fields: FieldMap) -> Expanded:
    """`prompt` -> prompt, `completion` -> response (message lists: a conversation)."""
    prompt_col = fields.column_for("prompt")
    prompt, completion = value.get(prompt_col), value.get("completion")
    if isinstance(prompt, list) or isinstance(completion, list):
        items = _positioned(prompt_col, prompt, "user") + _positioned(
            "completion", completion, ASSISTANT
        )
        top = top_fields(value, fields, (prompt_col, "completion"))
        return expand(items, top, session_of(top, [prompt, completion]))
    values = by_field(value, fields, (prompt_col, "completion"))
    return Expanded([{**values, "prompt": prompt, "response": completion}])


def preference(value: Mapping[str, Any], file: str, line: int, fields: FieldMap) -> Expanded:
    """`prompt` + `chosen`/`rejected`: the chosen reply is the record's response, the pair
    a preference; as text, or as message lists (the whole conversation in `chosen` when
    there is no `prompt`, as TRL's implicit-prompt datasets ship it)."""
    prompt_col = fields.column_for("prompt")
    prompt, chosen, rejected = value.get(prompt_col), value.get("chosen"), value.get("rejected")
    if isinstance(prompt, str) and isinstance(chosen, str) and isinstance(rejected, str):
        values = by_field(value, fields, (prompt_col, "chosen", "rejected"))
        raw_id = values.get("id")
        record_id = str(raw_id) if raw_id not in (None, "") else default_id(file, line)
        return Expanded([{**values, "prompt": prompt, "response": chosen}],
                        [(record_id, chosen, rejected)])  # fmt: skip
    if prompt is None and not isinstance(chosen, list):
        raise Invalid("unknown_shape", f"preference pair: no {prompt_col!r} and 'chosen' is "
                      "not a list of messages")  # fmt: skip
    items = _positioned(prompt_col, prompt, "user") + _positioned("chosen", chosen, ASSISTANT)
    top = top_fields(value, fields, (prompt_col, "chosen", "rejected"))
    out = expand(items, top, session_of(top, [prompt, chosen]))
    _add_preference(out, prompt, chosen, rejected)
    return out


def _positioned(column: str, value: Any, role: str) -> list[tuple[str, Any]]:
    """A prompt or reply as positioned messages: a list as it is, a string as one message."""
    if value is None:
        return []
    if isinstance(value, list):
        return [(f"{column}[{i}]", item) for i, item in enumerate(value)]
    if isinstance(value, str):
        return [(column, {"role": role, "content": value})]
    raise Invalid("wrong_type", f"field {column!r}: expected a string or a list of messages, "
                  f"got {type(value).__name__}")  # fmt: skip


def _add_preference(out: Expanded, prompt: Any, chosen: Any, rejected: Any) -> None:
    """(final turn, chosen reply, rejected reply) when both sides answer the same context."""
    if not out.rows or out.rows[-1]["turn"] != len(out.rows) + len(out.rejected):
        return  # the final turn was rejected: no record to attach the pair to
    final = out.rows[-1]
    chosen_list = chosen if isinstance(chosen, list) else [chosen]
    rejected_list = rejected if isinstance(rejected, list) else [rejected]
    why = None
    if prompt is None and chosen_list[:-1] != rejected_list[:-1]:
        why = "chosen and rejected differ before the reply"
    chosen_reply, rejected_reply = _reply_text(chosen_list[-1]), _reply_text(rejected_list[-1])
    if chosen_reply is None or rejected_reply is None:
        why = why or "chosen or rejected does not end with an assistant reply"
    if why is None:
        out.preferences.append((final["id"], chosen_reply, rejected_reply))
    elif isinstance(final["metadata"], dict):
        final["metadata"]["preference_skipped"] = why


def _reply_text(item: Any) -> str | None:
    """The text of a final reply: a string, or an assistant message's text."""
    if isinstance(item, str):
        return item
    if role_of(item) != ASSISTANT:
        return None
    try:
        return read_message(item, "reply").text
    except Invalid:
        return None
