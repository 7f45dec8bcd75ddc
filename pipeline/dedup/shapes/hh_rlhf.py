"""Anthropic hh-rlhf pairs: a `chosen` and a `rejected` transcript of "\n\nHuman:" and
"\n\nAssistant:" turns -> linked turn records of the chosen one + one preference."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline.dedup.shapes.base import Expanded
from pipeline.dedup.validate import FieldMap, Invalid

# Split ONLY on these markers: "Human:" without the blank line, and other "\n\nWord:"
# patterns (list items such as "Address:"), occur inside turn text.
_MARKER = re.compile(r"\n\n(Human|Assistant):")


def split_turns(transcript: str) -> list[tuple[str, str]]:
    """(role, text) segments of a transcript, consecutive same-role segments merged."""
    parts = _MARKER.split(transcript)
    segments: list[tuple[str, str]] = []
    if parts[0].strip():  # text before the first marker: the transcript opened without one
        segments.append(("Human", parts[0].strip()))
    for role, text in zip(parts[1::2], parts[2::2], strict=True):
        text = text.strip()
        if segments and segments[-1][0] == role:
            # Non-alternating turns (a few hh-rlhf lines): one speaker's consecutive
            # messages form one message, so turns stay prompt -> response pairs.
            segments[-1] = (role, f"{segments[-1][1]}\n\n{text}".strip())
        else:
            segments.append((role, text))
    return segments


def _final_reply(transcript: str) -> tuple[str, str]:
    """(context before the final Assistant marker, the final reply)."""
    cut = transcript.rfind("\n\nAssistant:")
    if cut < 0:
        return transcript, ""
    return transcript[:cut], transcript[cut + len("\n\nAssistant:") :].strip()


def hh_rlhf(
    value: Mapping[str, Any], file: str, line: int, fields: FieldMap | None = None
) -> Expanded:
    """An hh-rlhf pair -> linked turn records of the chosen transcript + one preference
    (the session is the file and line: hh-rlhf lines carry no id)."""
    chosen, rejected = value.get("chosen"), value.get("rejected")
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        raise Invalid("invalid_transcript", "expected string fields 'chosen' and 'rejected'")
    segments = split_turns(chosen)
    if not segments:
        raise Invalid("invalid_transcript", "'chosen' holds no Human/Assistant turn")
    session = f"{file}:{line}"
    turns: list[dict[str, Any]] = []
    for role, text in segments:
        if role == "Human" or not turns:
            turns.append({"prompt": text if role == "Human" else "", "response": None})
            if role == "Assistant":  # a transcript opening with the Assistant: no prompt
                turns[-1]["response"] = text
        else:
            turns[-1]["response"] = text
    out = Expanded()
    parent = None
    alternating = len(segments) == len(_MARKER.findall(chosen)) + bool(
        _MARKER.split(chosen)[0].strip()
    )
    for number, turn in enumerate(turns, start=1):
        record_id = f"{session}:{number}"
        meta: dict[str, Any] = {"turns": len(turns)}
        if not alternating:
            meta["non_alternating"] = True
        turn.update(id=record_id, session_id=session, parent_id=parent, turn=number, metadata=meta)
        out.rows.append(turn)
        parent = record_id

    chosen_context, chosen_reply = _final_reply(chosen)
    rejected_context, rejected_reply = _final_reply(rejected)
    final = out.rows[-1]
    if chosen_context == rejected_context:
        out.preferences.append((final["id"], chosen_reply, rejected_reply))
    else:
        # The two sides differ before the final reply (5 hh-rlhf lines): the rejected reply
        # answers another conversation, so it is not a preference over this one.
        final["metadata"]["preference_skipped"] = "chosen and rejected differ before the reply"
    return out
