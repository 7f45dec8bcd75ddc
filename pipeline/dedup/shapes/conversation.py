"""Conversations (OpenAI chat `messages`, ShareGPT `conversations`) -> one record per turn.

A turn is a user message and the assistant reply that follows it. The turns of a
conversation share a `session_id` (the conversation's own id, else a stable hash of its
messages), are numbered by `turn` and linked by `parent_id`. What is not a prompt or a reply
is kept in the turn's metadata: the system prompt in effect (`system`), tool calls and tool
results, content parts that are not text, messages of roles we do not know, and an
assistant message that opens the conversation (`opening`, on the first turn).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.dedup.shapes.base import Expanded, by_field, take_alias
from pipeline.dedup.shapes.messages import (
    ASSISTANT,
    CALL,
    SYSTEM,
    TOOL,
    USER,
    Message,
    read_message,
    role_of,
)
from pipeline.dedup.validate import FieldMap, Invalid

# Top-level columns the exports use for what the record schema calls these fields.
ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("user",),  # OpenAI's `user` parameter
    "session_id": ("conversation_id", "chat_id", "thread_id"),
    "created_at": ("created", "timestamp"),  # OpenAI's `created` is Unix seconds
}
# Record fields a conversation's own columns cannot set: each turn gets its own.
_PER_TURN = ("prompt", "response", "parent_id", "turn")


@dataclass
class Turn:
    """A user message (or several in a row) and the reply that follows."""

    prompt: list[str] = field(default_factory=list)
    response: list[str] | None = None  # None: no reply yet
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    bad: tuple[str, str] | None = None  # (reason, detail) of a malformed message in it


def chat(value: Mapping[str, Any], file: str, line: int, fields: FieldMap) -> Expanded:
    """An OpenAI chat / fine-tuning row (`messages`) -> linked turn records."""
    return read_conversation(value, fields, "messages")


def sharegpt(value: Mapping[str, Any], file: str, line: int, fields: FieldMap) -> Expanded:
    """A ShareGPT row (`conversations` of `from`/`value`) -> linked turn records."""
    return read_conversation(value, fields, "conversations")


def read_conversation(value: Mapping[str, Any], fields: FieldMap, key: str) -> Expanded:
    """The messages under `key` and the row's other columns -> turn records."""
    messages = value.get(key)
    if not isinstance(messages, list):
        got = "nothing" if messages is None else type(messages).__name__
        raise Invalid("invalid_conversation", f"'{key}': expected a list of messages, got {got}")
    if not messages:
        raise Invalid("empty_conversation", f"'{key}' is empty")
    top = top_fields(value, fields, (key,))
    items = [(f"{key}[{i}]", item) for i, item in enumerate(messages)]
    return expand(items, top, session_of(top, messages))


def top_fields(value: Mapping[str, Any], fields: FieldMap, skip: tuple[str, ...]) -> dict[str, Any]:
    """The conversation's own columns in record field names (aliases applied); per-turn
    fields it happens to carry are kept as metadata, not applied to every turn."""
    top = by_field(value, fields, skip)
    for name, aliases in ALIASES.items():
        take_alias(top, name, aliases)
    for name in _PER_TURN:
        if name in top:
            top[f"{name}_column"] = top.pop(name)
    return top


def session_of(top: dict[str, Any], content: Any) -> str:
    """The conversation's id (`session_id`, else `id`; both leave `top`), else a stable hash."""
    session, own_id = top.pop("session_id", None), top.pop("id", None)
    for candidate in (session, own_id):
        if isinstance(candidate, str | int) and not isinstance(candidate, bool):
            if str(candidate).strip():
                return str(candidate)
        elif candidate is not None:
            raise Invalid("wrong_type", f"conversation id: expected a string, got "
                          f"{type(candidate).__name__}")  # fmt: skip
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    return "conv-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def expand(items: list[tuple[str, Any]], top: dict[str, Any], session: str) -> Expanded:
    """Positioned raw messages -> one record row per turn; a turn holding a malformed
    message is rejected (with its position), the others kept."""
    turns, opening = build_turns(items)
    out = Expanded()
    parent: str | None = None
    their_meta = top.get("metadata")
    for number, turn in enumerate(turns, start=1):
        record_id = f"{session}:{number}"
        if turn.bad is not None:
            out.rejected.append((*turn.bad, record_id))
        else:
            meta: dict[str, Any] = {"turns": len(turns)}
            if turn.system is not None:
                meta["system"] = turn.system
            meta.update(opening if number == 1 else {}, **turn.meta)
            if isinstance(their_meta, dict):
                meta = {**their_meta, **meta}
            elif their_meta is not None:
                meta = their_meta  # not an object: validation rejects it with its type
            response = None if turn.response is None else "\n\n".join(turn.response)
            out.rows.append({**top, "id": record_id, "prompt": "\n\n".join(turn.prompt),
                             "response": response, "session_id": session,
                             "parent_id": parent, "turn": number, "metadata": meta})  # fmt: skip
        parent = record_id
    return out


def build_turns(items: list[tuple[str, Any]]) -> tuple[list[Turn], dict[str, Any]]:
    """Turns in order, and the notes of what came before the first user message."""
    turns: list[Turn] = []
    opening: dict[str, Any] = {}
    systems: list[str] = []
    roles: list[str] = []
    pending_bad: tuple[str, str] | None = None
    previous: str | None = None  # the role of the previous readable message
    for at, item in items:
        try:
            message = read_message(item, at)
        except Invalid as exc:
            bad = (exc.reason, exc.detail)
            if role_of(item) == USER:  # it opened a turn: that turn is the bad one
                turns.append(Turn(system=_joined(systems), bad=bad))
            elif turns:
                turns[-1].bad = turns[-1].bad or bad
            else:
                pending_bad = pending_bad or bad
            previous = None
            continue
        roles.append(message.role or message.written_role)
        target = turns[-1].meta if turns else opening
        if message.role == SYSTEM:
            if message.text:
                systems.append(message.text)
        elif message.role == USER:
            if turns and turns[-1].response is None and previous == USER:
                turns[-1].prompt.append(message.text or "")  # merged, as hh-rlhf does
                turns[-1].meta["non_alternating"] = True
            else:
                turns.append(Turn([message.text or ""], system=_joined(systems), bad=pending_bad))
                pending_bad = None
            _note(turns[-1].meta, "parts", message.notes.get("parts"))
        elif message.role == ASSISTANT:
            _reply(turns[-1] if turns else None, opening, message, previous)
        elif message.role in (TOOL, CALL):
            name = "tool_results" if message.role == TOOL else "tool_calls"
            _note(target, name, [{"at": at, "content": message.text, **message.notes}])
        else:  # a role we do not know: kept beside the turn, not guessed into it
            entry = {"at": at, "role": message.written_role, "text": message.text}
            _note(target, "unknown_roles", [entry])
        previous = message.role
    if not turns:
        if pending_bad is not None:
            raise Invalid(*pending_bad)
        what = "only system messages" if set(roles) <= {SYSTEM} else (
            f"no user message (roles: {', '.join(sorted(set(roles)))[:200]})"
        )  # fmt: skip
        raise Invalid("no_user_turn", f"the conversation has {what}")
    return turns, opening


def _reply(
    turn: Turn | None, opening: dict[str, Any], message: Message, previous: str | None
) -> None:
    """An assistant message: the reply of the open turn (consecutive replies merged), or,
    before any user message, the conversation's `opening`."""
    target = turn.meta if turn is not None else opening
    _note(target, "tool_calls", [{"at": message.at, "calls": message.notes["tool_calls"]}]
          if "tool_calls" in message.notes else None)  # fmt: skip
    _note(target, "parts", message.notes.get("parts"))
    if message.text is None:
        return
    if turn is None:
        opening["opening"] = "\n\n".join(filter(None, [opening.get("opening"), message.text]))
    elif turn.response is None:
        turn.response = [message.text]
    else:
        turn.response.append(message.text)
        if previous == ASSISTANT:
            turn.meta["non_alternating"] = True


def _note(meta: dict[str, Any], key: str, entries: list[Any] | None) -> None:
    if entries:
        meta.setdefault(key, []).extend(entries)


def _joined(systems: list[str]) -> str | None:
    return "\n\n".join(systems) if systems else None
