"""Relevance judgments: a writer key grades the records a logged query returned (0-3).

Real use turns into judged queries: a search response carries its `query_id`, and a grade
names that query and one of its results. The retrieval stage evaluates every search mode
on the snapshot of these judgments (`pipeline stats feedback` -> paths.judgments).
Validation is the one check for the CLI and HTTP: a query the log does not know, a record
the query did not return or a grade outside 0-3 is bad input (exit 2, HTTP 400); a record
outside the key's scope is forbidden, as for feedback.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.errors import UserInputError
from pipeline.service.keys import Principal
from pipeline.store import service as db
from pipeline.store.lookup import StoreReader, get_record

GRADES: tuple[int, ...] = (0, 1, 2, 3)  # not relevant, marginal, relevant, highly relevant
JUDGMENTS_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("text", pa.string()),
        ("filters", pa.list_(pa.string())),
        ("mode", pa.string()),
        ("id", pa.string()),  # the record's, as in data/feedback.parquet (erasure drops by it)
        ("rid", pa.int64()),
        ("grade", pa.float64()),  # the mean over keys of each key's latest grade
        ("judges", pa.int64()),
    ]
)


def check_grade(grade: Any) -> int:
    """The grade as an int; UserInputError unless it is a whole number from 0 to 3."""
    if isinstance(grade, bool) or not isinstance(grade, int | float) or grade not in GRADES:
        raise UserInputError(f"grade {grade!r}: expected a whole number from 0 to 3")
    return int(grade)


def judge(
    service_db: str | Path,
    store: StoreReader,
    principal: Principal,
    query_id: str,
    grades: Sequence[tuple[str, Any]],
    lock_timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """Store `(record id or rid, grade)` pairs on the results of query `query_id`, all or none."""
    principal.require("writer")
    if not grades:
        raise UserInputError("no grades given: name at least one record and its grade")
    checked = [(record_id, check_grade(grade)) for record_id, grade in grades]
    with store.cursor() as cur:  # released before waiting for the service DB
        records = [(get_record(cur, rec, principal.scope), g) for rec, g in checked]
    with db.open_service_db(service_db, lock_timeout=lock_timeout) as con:
        query = db.logged_query(con, query_id)
        if query is None:
            raise UserInputError(
                f"query {query_id!r} is unknown: use the query_id of a search response "
                "(the service writes its log about once a second)"
            )
        returned = set(query["result_rids"])
        for record, _ in records:
            if record["rid"] not in returned:
                raise UserInputError(
                    f"record {record['id']!r} is not among the {len(returned)} results of "
                    f"query {query_id!r}; only what a query returned can be graded"
                )
        rows = []
        con.begin()  # every grade of the request, or none
        try:
            for record, grade in records:
                row = {
                    "query_id": query_id,
                    "record_id": record["id"],
                    "rid": record["rid"],
                    "grade": grade,
                    "key_id": principal.key_id,
                    "key_name": principal.name,
                }
                row["judgment_id"], row["created_at"] = db.insert_judgment(con, row)
                rows.append(row)
            con.commit()
        except BaseException:
            con.rollback()
            raise
    return rows


def judged_queries(service_db: str | Path) -> list[dict[str, Any]]:
    """Per (query, record), the mean of each key's latest grade, with the query's text."""
    if not Path(service_db).exists():
        return []
    with db.open_service_db(service_db, read_only=True) as con:
        return db.judged_queries(con)


def write_judgments(service_db: str | Path, path: str | Path) -> int:
    """Publish the judgments as a sorted Parquet file (the retrieval stage's dependency);
    returns the number of judged queries."""
    import pyarrow.parquet as pq

    from pipeline.io.atomic import atomic_path

    rows = judged_queries(service_db)
    table = pa.Table.from_pylist(rows, schema=JUDGMENTS_SCHEMA)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return len({r["query_id"] for r in rows})
