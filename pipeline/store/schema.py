"""Table definitions of the dedup store (data/dedup/store.duckdb).

Every input record ends in exactly one of `records`, `duplicates`, `filtered` or `rejected`.
"""

from __future__ import annotations

from pipeline.record import DUPLICATE_FIELDS, FIELDS, FILTERED_FIELDS, Field


def columns_sql(fields: tuple[Field, ...]) -> str:
    """The column definitions of these fields, as in CREATE TABLE."""
    return ", ".join(f"{f.name} {f.sql}" + ("" if f.nullable else " NOT NULL") for f in fields)


# The record tables are derived from the one field table (pipeline/record.py).
DDL: tuple[str, ...] = (
    # Kept records: the deduplicated, redacted data every later stage reads.
    f"CREATE TABLE IF NOT EXISTS records ({columns_sql(FIELDS)}, PRIMARY KEY (rid))",
    # Removed duplicates, each pointing at the kept record it duplicates.
    f"CREATE TABLE IF NOT EXISTS duplicates ({columns_sql(DUPLICATE_FIELDS)}, PRIMARY KEY (rid))",
    # Records a quality filter dropped: the filter, the measured value and the threshold.
    f"CREATE TABLE IF NOT EXISTS filtered ({columns_sql(FILTERED_FIELDS)}, PRIMARY KEY (rid))",
    # Rows that could not become records, with where they came from and why.
    """CREATE TABLE IF NOT EXISTS rejected (
        file VARCHAR NOT NULL,
        line BIGINT NOT NULL,
        reason VARCHAR NOT NULL,        -- short machine-readable code, e.g. 'invalid_json'
        detail VARCHAR NOT NULL,        -- the human-readable message
        record_id VARCHAR,              -- the row's id when it could be read
        raw VARCHAR NOT NULL,
        user_hash VARCHAR)              -- sha256 of its user id, when readable: for erasure
        """,
    # Preference feedback found in the data (hh-rlhf chosen/rejected final replies).
    """CREATE TABLE IF NOT EXISTS preferences (
        record_id VARCHAR NOT NULL,     -- the turn record whose response is `chosen`
        chosen VARCHAR NOT NULL,
        rejected VARCHAR NOT NULL,
        source VARCHAR)""",
    # PII replaced in each record, by field and type (counts, never the values).
    """CREATE TABLE IF NOT EXISTS pii_redactions (
        record_id VARCHAR NOT NULL,
        field VARCHAR NOT NULL,
        pii_type VARCHAR NOT NULL,
        count INTEGER NOT NULL)""",
    # Reviewed labels (data/corrections.jsonl) the run applied: the record's label in
    # `records` is `label`; the input's was `original_label` (pipeline/dedup/corrections.py).
    """CREATE TABLE IF NOT EXISTS label_corrections (
        record_id VARCHAR NOT NULL,
        original_label VARCHAR,
        label VARCHAR,                  -- the label the record has now (dismiss: unchanged)
        action VARCHAR NOT NULL,        -- accept | correct | dismiss
        corrected_by VARCHAR NOT NULL,
        corrected_at TIMESTAMPTZ NOT NULL)""",
    # Facts about the run that produced this store: params, data hash, counts.
    """CREATE TABLE IF NOT EXISTS meta (
        key VARCHAR PRIMARY KEY,
        value VARCHAR NOT NULL)""",
)
