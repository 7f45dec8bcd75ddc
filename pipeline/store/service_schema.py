"""The schema of data/service.duckdb: its version and the forward migrations that reach it.

The file holds what exists nowhere else (API keys, feedback, the query log, the erasure
audit), so a schema change must carry its rows forward, never recreate the tables. Each
migration runs in one transaction together with the row that records it in
`schema_version`: a failed migration leaves the file as it was, at the previous version.
Every opener applies the pending ones (`open_service_db` opens the file for writing), and
refuses a file whose version is newer than this code: an older release would misread it.

To change the schema, append a Migration with the next version; never edit one that has
shipped. Its statements must be idempotent (`IF NOT EXISTS`, `ADD COLUMN IF NOT EXISTS`,
`UPDATE ... WHERE` the old form), and a test must open a file of the previous version
with rows in every table (see docs/service.md and tests/test_service_migrations.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.errors import PipelineError, UserInputError


@dataclass(frozen=True)
class Migration:
    """One forward step: the statements that bring version - 1 to version."""

    version: int
    description: str
    statements: tuple[str, ...]


# Version 1 is the schema as it stood before versioning (files written by earlier releases
# have these tables and no `schema_version`): IF NOT EXISTS leaves their rows untouched.
_V1_TABLES: tuple[str, ...] = (
    # Only the sha256 of a key is stored; `key_id` is the public part shown in listings.
    """CREATE TABLE IF NOT EXISTS api_keys (
        key_id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        role VARCHAR NOT NULL,
        key_hash VARCHAR NOT NULL,
        scope_user_ids VARCHAR[],       -- NULL: not restricted by user_id
        scope_sources VARCHAR[],        -- NULL: not restricted by source
        created_at TIMESTAMPTZ NOT NULL,
        created_by VARCHAR NOT NULL,
        revoked_at TIMESTAMPTZ)""",
    """CREATE SEQUENCE IF NOT EXISTS feedback_seq START 1""",
    """CREATE TABLE IF NOT EXISTS feedback (
        feedback_id BIGINT PRIMARY KEY DEFAULT nextval('feedback_seq'),
        record_id VARCHAR NOT NULL,
        rid BIGINT NOT NULL,
        key_id VARCHAR NOT NULL,
        key_name VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,          -- 'score' | 'up' | 'down'
        score DOUBLE NOT NULL,          -- normalised to [0, 1]: (s - 1) / 4, up = 1, down = 0
        raw_score DOUBLE,               -- the 1..5 score as sent, for kind = 'score'
        comment VARCHAR,
        created_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS query_log (
        ts TIMESTAMPTZ NOT NULL,
        key_id VARCHAR NOT NULL,
        key_name VARCHAR NOT NULL,
        text VARCHAR NOT NULL,
        filters VARCHAR[] NOT NULL,
        mode VARCHAR NOT NULL,
        k INTEGER NOT NULL,
        result_rids BIGINT[] NOT NULL,
        latency_ms DOUBLE NOT NULL,
        status INTEGER NOT NULL)""",
    # Who erased how much, when: never the user id or any erased content.
    """CREATE TABLE IF NOT EXISTS erasures (
        erased_at TIMESTAMPTZ NOT NULL,
        erased_by VARCHAR NOT NULL,
        user_hash VARCHAR NOT NULL,     -- sha256 of the user id, as in data/erasures.txt
        records BIGINT NOT NULL,
        duplicates BIGINT NOT NULL,
        preferences BIGINT NOT NULL,
        pii_redactions BIGINT NOT NULL,
        rejected BIGINT NOT NULL,
        feedback BIGINT NOT NULL,
        index_removed BIGINT NOT NULL)""",
)

# The prediction log (pipeline/monitor/log.py): what the served model answered, never the
# raw input unless monitor.log_text (then redacted); `embedding` is a fixed random projection
# of the input's MiniLM vector, enough to measure drift, not to read the text back.
_V2_PREDICTIONS: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS predictions (
        prediction_id VARCHAR NOT NULL, -- returned to the caller, who confirms or corrects by it
        ts TIMESTAMPTZ NOT NULL,
        key_id VARCHAR NOT NULL,
        model_name VARCHAR NOT NULL,
        model_version VARCHAR NOT NULL,
        label VARCHAR NOT NULL,
        confidence DOUBLE NOT NULL,
        latency_ms DOUBLE NOT NULL,     -- of the request, shared by the texts of a batch
        input_hash VARCHAR NOT NULL,    -- sha256 of the input text
        truncated BOOLEAN NOT NULL,
        embedding FLOAT[],              -- NULL when no encoder was available
        text VARCHAR)                   -- NULL unless monitor.log_text""",
    """CREATE TABLE IF NOT EXISTS prediction_feedback (
        prediction_id VARCHAR NOT NULL,
        label VARCHAR NOT NULL,         -- the true label: equal to the prediction's = confirmed
        key_id VARCHAR NOT NULL,
        key_name VARCHAR NOT NULL,
        created_at TIMESTAMPTZ NOT NULL)""",
)

# Version 3: each logged query gets an id a search response carries, and writer keys grade
# the records a query returned (relevance 0-3): the judged queries of docs/retrieval.md.
_V3_JUDGMENTS: tuple[str, ...] = (
    "ALTER TABLE query_log ADD COLUMN IF NOT EXISTS query_id VARCHAR",  # NULL before v3
    """CREATE SEQUENCE IF NOT EXISTS judgment_seq START 1""",
    """CREATE TABLE IF NOT EXISTS judgments (
        judgment_id BIGINT PRIMARY KEY DEFAULT nextval('judgment_seq'),
        query_id VARCHAR NOT NULL,
        record_id VARCHAR NOT NULL,
        rid BIGINT NOT NULL,
        grade INTEGER NOT NULL,         -- 0 not relevant, 1 marginal, 2 relevant, 3 highly
        key_id VARCHAR NOT NULL,
        key_name VARCHAR NOT NULL,
        created_at TIMESTAMPTZ NOT NULL)""",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "api_keys, feedback, query_log, erasures", _V1_TABLES),
    Migration(2, "predictions, prediction_feedback", _V2_PREDICTIONS),
    Migration(3, "query ids and relevance judgments", _V3_JUDGMENTS),
)
SCHEMA_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL)"""


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The file's schema version: 0 for a file from before versioning (or a new one)."""
    # fetchall, not fetchone: a result left unfinished makes the connection's next
    # `register` (the query log's bulk append) fail with "unfinished result".
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE database_name = current_database() AND table_name = 'schema_version'"
    ).fetchall()[0][0]
    if not found:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]


def migrate(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> list[int]:
    """Apply the pending migrations in order, each in its own transaction; returns the
    versions applied. A file newer than `migrations` is refused (UserInputError, exit 2)."""
    _check_sequence(migrations)
    current = schema_version(con)
    newest = migrations[-1].version if migrations else 0
    if current > newest:
        raise UserInputError(
            f"{path}: schema version {current} is newer than this release of prompt-pipeline "
            f"understands (version {newest}); upgrade prompt-pipeline to open it (an older "
            "release would misread or damage it)"
        )
    applied = []
    for migration in migrations[current:]:
        con.begin()
        try:
            con.execute(_VERSION_TABLE)
            for statement in migration.statements:
                con.execute(statement)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, now())",
                [migration.version, migration.description],
            )
            con.commit()
        except duckdb.Error as exc:
            con.rollback()
            raise PipelineError(
                f"{path}: migration to schema version {migration.version} "
                f"({migration.description}) failed and was rolled back; the file is unchanged "
                f"at version {current}: {exc}"
            ) from exc
        current = migration.version
        applied.append(current)
    return applied


def _check_sequence(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1, 2, 3, ... in order; got {versions}")
