"""One message of a conversation (OpenAI chat, ShareGPT, DPO message lists), read leniently
into a role, a text and notes, or refused with its position (`messages[3]`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.dedup.validate import Invalid

USER, ASSISTANT, SYSTEM, TOOL, CALL = "user", "assistant", "system", "tool", "tool_call"

# Role names as the exports spell them, matched without case: OpenAI (developer is the
# new name of system; function the old name of tool), ShareGPT (human/gpt, and the
# function-calling variants function_call/observation), Gemini's model, Llama's ipython.
ROLES: dict[str, str] = {
    "user": USER, "human": USER,
    "assistant": ASSISTANT, "gpt": ASSISTANT, "model": ASSISTANT, "bot": ASSISTANT,
    "chatgpt": ASSISTANT,
    "system": SYSTEM, "developer": SYSTEM,
    "tool": TOOL, "function": TOOL, "ipython": TOOL, "observation": TOOL,
    "function_call": CALL, "tool_call": CALL,
}  # fmt: skip
# Content parts whose text is the message's text; any other part is noted in metadata.
TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


@dataclass
class Message:
    """A message: its canonical role (None: a role we do not know), the role as written,
    its text (None: none, e.g. an assistant message holding only tool calls) and notes."""

    at: str
    role: str | None
    written_role: str
    text: str | None
    notes: dict[str, Any] = field(default_factory=dict)


def role_of(item: Any) -> str | None:
    """The canonical role of a raw message, if one can be read (also for a malformed one)."""
    if isinstance(item, Mapping):
        written = item.get("role", item.get("from"))
        if isinstance(written, str):
            return ROLES.get(written.strip().lower())
    return None


def read_message(item: Any, at: str) -> Message:
    """`item` as a Message; Invalid(`invalid_message`) naming `at` when it cannot be read."""
    if not isinstance(item, Mapping):
        raise Invalid("invalid_message", f"{at}: expected an object, got {type(item).__name__}")
    # OpenAI spells role/content, ShareGPT from/value; a file may use either.
    sharegpt = "from" in item and "role" not in item
    role_key, content_key = ("from", "value") if sharegpt else ("role", "content")
    written = item.get(role_key)
    if not isinstance(written, str):
        got = "nothing" if written is None else type(written).__name__
        raise Invalid("invalid_message", f"{at}: '{role_key}' must be a string, got {got}")
    message = Message(at, ROLES.get(written.strip().lower()), written, None)
    message.text = _content(item.get(content_key), f"{at}.{content_key}", message.notes)
    for key in ("tool_calls", "function_call"):  # an assistant's calls: kept, never a reply
        if item.get(key) is not None:
            message.notes["tool_calls"] = item[key]
    for key in ("name", "tool_call_id"):  # which tool a result came from
        if isinstance(item.get(key), str):
            message.notes[key] = item[key]
    return message


def _content(content: Any, at: str, notes: dict[str, Any]) -> str | None:
    """The text of a content value: a string, null, or a list of parts (text parts joined
    by a line break; others noted by type and position, their data not copied)."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise Invalid(
            "invalid_message", f"{at}: expected a string or a list of parts, got "
            f"{type(content).__name__}"
        )  # fmt: skip
    texts: list[str] = []
    for i, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, Mapping):
            raise Invalid("invalid_message", f"{at}[{i}]: expected a part object")
        kind = part.get("type")
        text = part.get("text")
        if (kind in TEXT_PARTS or kind is None) and isinstance(text, str):
            texts.append(text)
        else:
            # An image's base64 data would swamp the store: only what it was and where.
            notes.setdefault("parts", []).append({"at": f"{at}[{i}]", "type": str(kind)})
    return "\n".join(texts) if texts else None
