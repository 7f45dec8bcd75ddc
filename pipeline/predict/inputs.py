"""Checking texts to predict, as search checks its query: clear errors, never a guess.

Used by `pipeline predict` (exit 2) and the service's `POST /predict` (a 4xx).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import NotFoundError, UserInputError

# Python keeps bytes that are not UTF-8 (in argv, in a file read with surrogateescape) as
# lone surrogates; no valid text has one.
_SURROGATE = re.compile("[\ud800-\udfff]")
TEXT_KEYS = ("prompt", "text")  # the field a file's row is predicted from, first found


def check_text(text: Any, max_chars: int, where: str) -> str:
    """`text` if it can be predicted, else a UserInputError naming `where` and the problem."""
    if not isinstance(text, str):
        raise UserInputError(f"{where}: expected a string, got {type(text).__name__}")
    if _SURROGATE.search(text):
        raise UserInputError(f"{where}: the text is not valid UTF-8")
    if not text.strip():
        raise UserInputError(f"{where}: the text is empty")
    if len(text) > max_chars:
        raise UserInputError(
            f"{where}: the text has {len(text)} characters, more than predict.max_text_chars "
            f"({max_chars}); split it or raise the limit"
        )
    return text


def file_rows(path: Path, max_chars: int, max_line_bytes: int = 2_000_000) -> Iterator[dict]:
    """Rows of an input file in any format the dedup stage reads (pipeline/io/readers.py):
    {line, id, text, response, session_id}; a bad row is an error naming file and line."""
    from pipeline.io.readers import SUFFIXES, has_suffix, read_file
    from pipeline.io.rows import ReadStats

    if not path.is_file():
        raise NotFoundError(f"{path}: no such file")
    if not has_suffix(path.name):
        raise UserInputError(f"{path}: unknown format; expected one of {', '.join(SUFFIXES)}")
    for row in read_file(path, str(path), max_line_bytes, ReadStats()):
        where = f"{path}: line {row.line}"
        if row.reason:
            detail = f" ({row.detail})" if row.detail else ""
            raise UserInputError(f"{where}: {row.reason.replace('_', ' ')}{detail}")
        value = row.value
        if not isinstance(value, dict):
            raise UserInputError(f"{where}: expected an object with a prompt, got a value")
        key = next((k for k in TEXT_KEYS if k in value), None)
        if key is None:
            raise UserInputError(f"{where}: no {' or '.join(TEXT_KEYS)} field")
        response = value.get("response")
        yield {
            "line": row.line,
            "id": None if value.get("id") is None else str(value["id"]),
            "text": check_text(value[key], max_chars, where),
            "response": response if isinstance(response, str) else None,
        }
