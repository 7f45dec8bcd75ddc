"""The size of every value a caller can send the service, defined once.

The request models (pipeline/api/models.py) reject anything longer with 422, and the query
log truncates to the same caps, so a key can add at most a known number of bytes per request
to data/service.duckdb. Lengths are in characters (a character is at most 4 bytes of UTF-8).
"""

from __future__ import annotations

QUERY_TEXT_MAX = 2000  # a search query: a long question, not a document
FILTER_MAX = 256  # one `field op value` filter: a label, a user id, a date
FILTERS_MAX = 20  # filters per search
FILTER_TERMS_MAX = 16  # conditions in one filter (`a=1 OR b=2 ...`), for every caller
FILTER_DEPTH_MAX = 6  # nested NOT / parentheses in one filter
RECORD_ID_MAX = 512  # a record id (path or body): ids come from the user's files
KEY_ID_MAX = 64  # a key id in a path: ours are 12 hex characters
NAME_MAX = 200  # a key's name
COMMENT_MAX = 2000  # a feedback comment
USER_ID_MAX = 512  # a user id to erase or to scope a key to
SCOPE_VALUE_MAX = 512  # one scope value (a user id or a source)
SCOPE_VALUES_MAX = 100  # values per scope field


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters (a bound for stored and echoed text)."""
    return text if len(text) <= limit else text[:limit]


PREDICT_TEXT_MAX = 100_000  # a text to classify: a document; predict.max_text_chars, as the CLI
PREDICT_BATCH_MAX = 64  # texts per POST /predict (the body cap bounds the bytes as well)
