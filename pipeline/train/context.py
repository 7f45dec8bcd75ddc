"""A turn's conversation as model input: the turn's own text, then its session's first prompt.

In chat logs a follow-up ("Can you make it shorter and mention X?") is labelled by what the
conversation is about, which the turn alone often does not say. With `model.context:
first_turn` a model reads each later turn followed by the prompt of its session's first kept
turn (lowest `turn`, then input order); first turns and records without a session read
their own text only. Sessions never straddle splits (pipeline/train/split.py), so a test
turn's context is never a training record's text.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from pipeline.errors import UserInputError

CONTEXT_MODES: tuple[str, ...] = ("none", "first_turn")


def check_mode(mode: str, where: str) -> str:
    """`mode` if it is one of CONTEXT_MODES, else a UserInputError naming `where`."""
    if mode not in CONTEXT_MODES:
        raise UserInputError(f"{where}: context {mode!r} is not one of {', '.join(CONTEXT_MODES)}")
    return mode


def first_prompts(records: pd.DataFrame) -> dict[str, tuple[int, str]]:
    """session_id -> (rid, prompt) of the session's first kept turn, over all `records`."""
    if "session_id" not in records.columns:
        return {}
    sessions = records[records["session_id"].map(_present)]
    if sessions.empty:
        return {}
    turn = sessions["turn"] if "turn" in sessions.columns else pd.Series(0, index=sessions.index)
    order = sessions.assign(_turn=turn.fillna(0), _rid=sessions["rid"])
    firsts = order.sort_values(["_turn", "_rid"], kind="stable").drop_duplicates("session_id")
    return {
        str(s): (int(r), str(p))
        for s, r, p in zip(firsts["session_id"], firsts["rid"], firsts["prompt"], strict=True)
    }


def with_context(
    rids: Sequence[int],
    sessions: Sequence[str | None],
    texts: Sequence[str],
    firsts: dict[str, tuple[int, str]],
    mode: str,
) -> list[str]:
    """The model input of each record: its text, plus its session's first prompt if later."""
    if mode == "none":
        return list(texts)
    out = []
    for rid, session, text in zip(rids, sessions, texts, strict=True):
        first = firsts.get(str(session)) if _present(session) else None
        out.append(text if first is None or first[0] == int(rid) else f"{text}\n{first[1]}")
    return out


def _present(value: object) -> bool:
    if isinstance(value, str):
        return bool(value.strip())  # a blank id links nothing (pipeline/dedup/validate.py)
    return value is not None and not (isinstance(value, float) and pd.isna(value))
