"""Filters are data: parsing, typed values, and SQL-looking values matched literally."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.search import records_table
from helpers.store import write_records_store

from pipeline.errors import UserInputError
from pipeline.search.filters import Condition, parse_filter, quote_value
from pipeline.store.db import connect
from pipeline.store.scope import Scope
from pipeline.store.search import matching_rids


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("label=support", Condition("label", "=", "support")),
        ("label==support", Condition("label", "=", "support")),
        ("  user_id != u1 ", Condition("user_id", "!=", "u1")),
        ("quality>=4", Condition("quality", ">=", 4.0)),
        ("quality<2.5", Condition("quality", "<", 2.5)),
        ("tags=billing", Condition("tags", "=", "billing")),
        ("created_at<2024-06-01", Condition("created_at", "<", datetime(2024, 6, 1, tzinfo=UTC))),
        ("source=a=b.csv", Condition("source", "=", "a=b.csv")),
    ],
)
def test_parse(text: str, expected: Condition) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("colour=red", "unknown field 'colour'"),
        ("quality>=high", "not a number"),
        ("created_at<2024-13-01", "not a date"),
        ("label>=support", "ranges apply only to"),
        ("label=", "missing value"),
        ("just words", "expected FIELD=VALUE"),
        ("rid=1; DROP TABLE records", "unknown field 'rid'"),
        ("quality>nan", "not a finite number"),
        ("quality<=-inf", "not a finite number"),
        ("quality>1e999", "not a finite number"),
        ("created_at>0001-01-01T00:00:00+14:00", "out of range"),
        ("created_at<9999-12-31T23:59:59-14:00", "out of range"),
    ],
)
def test_bad_filters_name_the_problem(text: str, needle: str) -> None:
    with pytest.raises(UserInputError, match=needle):
        parse_filter(text)


def test_condition_objects_validate_and_coerce() -> None:
    assert Condition("quality", "in", ("1", 2)).value == (1.0, 2.0)
    # A scalar for `in` is one value, not a TypeError from iterating it.
    assert Condition("quality", "in", 3).value == (3.0,)
    assert Condition("label", "in", "support").value == ("support",)
    with pytest.raises(UserInputError, match="at least one value"):
        Condition("label", "in", [])
    with pytest.raises(UserInputError, match="unknown"):
        Condition("password", "=", "x")


INJECTIONS = [
    "' OR 1=1 --",
    "support'; DROP TABLE records; --",
    'x" OR "1"="1',
    "SELECT * FROM records",
    "support) OR (1=1",
    "%",
    "_",
]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    table = records_table(200)
    labels = table.column("label").to_pylist()
    for i, value in enumerate(INJECTIONS):  # a few records really carry these odd labels
        labels[i * 3 + 1] = value
    table = table.set_column(table.schema.get_field_index("label"), "label", [labels])
    path = tmp_path / "store.duckdb"
    write_records_store(path, table)
    return path


@pytest.mark.parametrize("value", INJECTIONS)
def test_sql_in_values_is_matched_literally(store: Path, value: str) -> None:
    con = connect(store)
    try:
        # Quoted as the syntax reads values holding OR, quotes or parentheses back.
        rids = matching_rids(con, [parse_filter(f"label={quote_value(value)}")], Scope.all())
        tags = matching_rids(con, [parse_filter(f"tags={quote_value(value)}")], Scope.all())
        total = con.execute("SELECT count(*) FROM records").fetchone()[0]
    finally:
        con.close()
    assert len(rids) == 1  # exactly the one record with that literal label, not all rows
    assert len(tags) == 0
    assert total == 200  # and nothing was dropped


def test_filters_combine_with_and(store: Path) -> None:
    con = connect(store)
    try:
        both = matching_rids(
            con, [parse_filter("tags=billing"), parse_filter("quality>=3")], scope=Scope.all()
        )
        expected = con.execute(
            "SELECT count(*) FROM records WHERE list_contains(tags, 'billing') AND quality >= 3"
        ).fetchone()[0]
        dated = matching_rids(con, [parse_filter("created_at<2024-01-11")], scope=Scope.all())
        within = matching_rids(
            con, [Condition("user_id", "in", ("user-1", "user-2"))], scope=Scope.all()
        )
        not_real = matching_rids(con, [parse_filter("origin!=real")], scope=Scope.all())
    finally:
        con.close()
    assert len(both) == expected > 0
    assert len(dated) == 10  # days 0..9 of the first year, one record per day among 200
    assert len(within) == sum(1 for i in range(200) if i % 7 in (1, 2))
    assert len(not_real) == 100
