"""Export shapes: how one parsed input row becomes record rows (docs/readers.md#shapes).

`data.format: auto` (the default) recognises each row's shape by its keys, so a file may
mix shapes; a named format reads every row as that shape. A shape reader turns a row into
record rows (record field names), the candidate records it rejected inside the row, and
preference pairs; `flat` is one row one record, mapped by `data.fields` as it always was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.dedup.shapes.base import Expanded
from pipeline.dedup.shapes.conversation import chat, sharegpt
from pipeline.dedup.shapes.hh_rlhf import hh_rlhf
from pipeline.dedup.shapes.pairs import alpaca, preference, prompt_completion
from pipeline.dedup.validate import FieldMap
from pipeline.errors import UserInputError

__all__ = ["FLAT", "FORMATS", "SHAPES", "Expanded", "ShapeReader"]

Reader = Callable[[Mapping[str, Any], str, int, FieldMap], Expanded]

FLAT = "flat"
# Every shape but flat, by the name `data.format` uses.
SHAPES: dict[str, Reader] = {
    "chat": chat,
    "sharegpt": sharegpt,
    "alpaca": alpaca,
    "prompt_completion": prompt_completion,
    "preference": preference,
    "hh_rlhf": hh_rlhf,
}
FORMATS: tuple[str, ...] = ("auto", FLAT, *SHAPES)


class ShapeReader:
    """`shape_of(row)` names a row's shape (None: no known shape); `expand` reads it."""

    def __init__(self, format: str, fields: FieldMap) -> None:
        if format not in FORMATS:
            raise UserInputError(
                f"data.format: unknown {format!r}; expected one of {list(FORMATS)}"
            )
        self.format, self.fields = format, fields
        self.prompt, self.response = fields.column_for("prompt"), fields.column_for("response")

    def shape_of(self, row: Mapping[str, Any]) -> str | None:
        """The row's shape: the configured format, or (auto) the first rule its keys match."""
        if self.format != "auto":
            return self.format
        if "chosen" in row and "rejected" in row:
            # hh-rlhf holds whole transcripts as text and has no prompt column.
            transcript = self.prompt not in row and isinstance(row["chosen"], str)
            return "hh_rlhf" if transcript else "preference"
        if isinstance(row.get("messages"), list):
            return "chat"
        if isinstance(row.get("conversations"), list):
            return "sharegpt"
        if "instruction" in row and "output" in row:
            return "alpaca"
        if self.prompt in row and "completion" in row and self.response not in row:
            return "prompt_completion"
        if self.prompt in row or self.response in row:
            return FLAT  # a prompt/response record, perhaps missing its prompt
        if "messages" in row:  # present but not a list: chat's reader says what is wrong
            return "chat"
        if "conversations" in row:
            return "sharegpt"
        return None

    def expand(self, shape: str, row: Mapping[str, Any], file: str, line: int) -> Expanded:
        """Read a row of a (non-flat) shape."""
        return SHAPES[shape](row, file, line, self.fields)

    def unknown(self, row: Mapping[str, Any]) -> str:
        """The detail of an `unknown_shape` rejection: the keys the row had."""
        keys = ", ".join(repr(str(k)) for k in list(row)[:20]) or "none"
        more = f" (+{len(row) - 20} more)" if len(row) > 20 else ""
        return (
            f"no known shape; keys: {keys}{more}; expected {self.prompt!r}, 'messages', "
            "'conversations', 'instruction'+'output', 'prompt'+'completion' or "
            "'chosen'+'rejected' (docs/readers.md#shapes)"
        )
