"""Filters on what teams log: metadata keys typed by what is stored, AND / OR / NOT, bounds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.search import build_project, records_table
from helpers.store import write_records_store
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import UserInputError
from pipeline.search.api import Searcher, SearchSettings
from pipeline.search.filter_syntax import from_json
from pipeline.search.filters import AllOf, AnyOf, Condition, Not, as_conditions, parse_filter
from pipeline.service.limits import FILTER_DEPTH_MAX, FILTER_TERMS_MAX
from pipeline.store.db import connect
from pipeline.store.scope import Scope
from pipeline.store.search import matching_rids

N = 200


def meta(i: int) -> dict:
    """Mixed types, as teams log them: the same key a string in some records, a number in others."""
    out: dict = {"n": i, "tier": ("gold", "silver", "free")[i % 3], "beta": i % 2 == 0}
    out["app_version"] = "2.1" if i % 4 == 0 else (2.1 if i % 4 == 1 else "2.10")
    if i % 10 == 0:
        out["ctx"] = {"locale": "fr" if i % 20 == 0 else "en"}
    if i == 5:
        out["only_five"] = "x"
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    table = records_table(N)
    column = [json.dumps(meta(i)) for i in range(N)]
    table = table.set_column(table.schema.get_field_index("metadata"), "metadata", [column])
    path = tmp_path_factory.mktemp("meta") / "store.duckdb"
    write_records_store(path, table)
    return path


def ids(store: Path, *filters: str | dict, scope: Scope | None = None) -> set[int]:
    """Positions (rec-i) of the records matching the filters."""
    con = connect(store)
    try:
        rids = matching_rids(con, as_conditions(filters), scope or Scope.all())
        found = con.execute(
            "SELECT id FROM records WHERE rid IN (SELECT unnest(?::BIGINT[]))", [rids.tolist()]
        ).fetchall()
    finally:
        con.close()
    return {int(row[0].split("-")[1]) for row in found}


def where(pred) -> set[int]:
    return {i for i in range(N) if pred(i)}


def test_parse_boolean_structure() -> None:
    a, b, c = (Condition("label", "=", v) for v in "abc")
    assert parse_filter("label=a OR label=b") == AnyOf((a, b))
    assert parse_filter("NOT label=a") == Not(a)
    assert parse_filter("label=a AND label=b OR label=c") == AnyOf((AllOf((a, b)), c))
    assert parse_filter("label=a AND (label=b OR label=c)") == AllOf((a, AnyOf((b, c))))
    assert parse_filter("NOT (label=a OR label=b)") == Not(AnyOf((a, b)))
    # Bare values keep their spaces; quoted values keep the words the syntax uses.
    assert parse_filter("label=customer support") == Condition("label", "=", "customer support")
    assert parse_filter('label="rock AND roll"') == Condition("label", "=", "rock AND roll")
    assert parse_filter("label='it\\'s (x)'") == Condition("label", "=", "it's (x)")
    assert parse_filter("metadata.ctx.locale=fr").field == "metadata.ctx.locale"


@pytest.mark.parametrize(
    "text",
    [
        'label="rock AND roll" OR NOT (quality>=4 AND metadata.tier=gold)',
        "metadata.app_version=2.1 OR label='a b)' OR created_at<2024-06-01",
        "NOT NOT tags=billing",
    ],
)
def test_a_filter_prints_as_text_that_parses_back(text: str) -> None:
    tree = parse_filter(text)
    assert parse_filter(str(tree)) == tree


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("label=a OR", "expected a field"),
        ("(label=a", r"missing '\)'"),
        ("(label=a))", "unexpected"),
        ("label='a", "unterminated"),
        ("NOT", "expected a field"),
        ("metadata=x", "unknown field 'metadata'"),
        ("metadata.a b=x", "missing operator"),
        ("colour=red OR label=a", "unknown field 'colour'"),
        ("label=a AND label= ", "missing value"),
        (" OR ".join(["label=a"] * (FILTER_TERMS_MAX + 1)), "more than"),
        ("NOT " * (FILTER_DEPTH_MAX + 1) + "label=a", "nested deeper"),
        ("(" * (FILTER_DEPTH_MAX + 1) + "label=a" + ")" * (FILTER_DEPTH_MAX + 1), "nested"),
    ],
)
def test_bad_expressions_name_the_problem(text: str, needle: str) -> None:
    with pytest.raises(UserInputError, match=needle):
        parse_filter(text)


def test_or_not_and_match_what_they_say(store: Path) -> None:
    assert ids(store, "label=support OR origin=real") == where(lambda i: i % 10 == 0 or i % 2 == 0)
    assert ids(store, "NOT origin=synthetic") == where(lambda i: i % 2 == 0)
    assert ids(store, "NOT (tags=billing OR quality>=3)") == where(
        lambda i: i % 4 != 0 and i % 5 < 3
    )
    # Repeated filters are ANDed, as before.
    assert ids(store, "origin=real", "NOT tags=billing") == where(lambda i: i % 4 == 2)


def test_metadata_values_compare_by_the_stored_type(store: Path) -> None:
    # Numbers as numbers: a text comparison would put "100" before "20".
    assert ids(store, "metadata.n<20") == set(range(20))
    assert ids(store, "metadata.n>=190 AND metadata.n!=195") == set(range(190, 200)) - {195}
    # "2.1" is the string "2.1" where a string is stored and the number 2.1 where a number
    # is: both match; the string "2.10" does not. 2.10 is the string "2.10" or the number 2.1.
    assert ids(store, "metadata.app_version=2.1") == where(lambda i: i % 4 in (0, 1))
    assert ids(store, "metadata.app_version=2.10") == where(lambda i: i % 4 in (1, 2, 3))
    assert ids(store, "metadata.beta=true") == where(lambda i: i % 2 == 0)
    assert ids(store, "metadata.tier=gold OR metadata.tier=free") == where(lambda i: i % 3 != 1)
    assert ids(store, "metadata.ctx.locale=fr") == where(lambda i: i % 20 == 0)
    # A record without the key does not match it, so NOT of it does.
    assert ids(store, "NOT metadata.ctx.locale=fr") == where(lambda i: i % 20 != 0)
    assert ids(store, "metadata.tier!=gold") == where(lambda i: i % 3 != 0)
    assert ids(store, "metadata.tier>=silver") == where(lambda i: i % 3 == 1)  # strings as text


def test_python_values_and_the_json_form(store: Path) -> None:
    assert ids(store, Condition("metadata.n", "<", 5)) == set(range(5))
    assert ids(store, Condition("metadata.beta", "=", False)) == where(lambda i: i % 2)
    assert ids(store, Condition("metadata.tier", "in", ["gold", "free"])) == where(
        lambda i: i % 3 != 1
    )
    real = {"not": {"field": "origin", "value": "synthetic"}}
    tree = {"or": [{"field": "label", "value": "support"}, real]}
    assert ids(store, tree) == ids(store, "label=support OR NOT origin=synthetic")
    assert from_json({"field": "quality", "op": ">=", "value": 4}) == parse_filter("quality>=4")
    for bad, needle in [
        ({"field": "quality", "op": "~", "value": 1}, "not supported"),
        ({"and": []}, "non-empty list"),
        ({"xor": [1]}, "expected"),
        ({"or": [{"field": "label", "value": "a"}] * (FILTER_TERMS_MAX + 1)}, "more than"),
    ]:
        with pytest.raises(UserInputError, match=needle):
            from_json(bad)


@pytest.mark.parametrize("value", ["' OR 1=1 --", "x') OR TRUE OR ('", '$."n"'])
def test_metadata_values_and_keys_are_never_sql(store: Path, value: str) -> None:
    from pipeline.search.filters import quote_value

    assert ids(store, f"metadata.tier={quote_value(value)}") == set()
    with pytest.raises(UserInputError):
        parse_filter(f"metadata.{value}=1")


def test_a_key_no_record_has_is_an_error_naming_it(store: Path) -> None:
    with pytest.raises(UserInputError, match="no record has metadata key 'app_verison'"):
        ids(store, "label=support OR metadata.app_verison=2.1")
    assert ids(store, "metadata.only_five=x") == {5}
    # In a key's scope, a key that only records outside it carry is as good as absent.
    scoped = Scope.of({"user_id": ["user-0"]})
    with pytest.raises(UserInputError, match="only_five"):
        ids(store, "metadata.only_five=x", scope=scoped)


@pytest.mark.parametrize("selective", ["metadata.bucket=hit", "metadata.bucket=hit OR label=rare"])
def test_a_metadata_prefilter_still_returns_k(tmp_path: Path, selective: str) -> None:
    _, vectors = build_project(tmp_path, n=3000, dim=16, factory="HNSW16,Flat")
    con = connect(tmp_path / "store.duckdb", read_only=False)
    try:  # 1% of the records carry bucket=hit, spread over the clusters
        con.execute(
            "UPDATE records SET metadata = CASE WHEN hash(id) % 100 = 0 "
            'THEN \'{"bucket": "hit"}\' ELSE \'{"bucket": "miss"}\' END'
        )
    finally:
        con.close()
    searcher = Searcher(tmp_path / "index", tmp_path / "store.duckdb", SearchSettings(), None)
    try:
        hits = searcher.search_vector(vectors[7], k=10, filters=[selective], scope=Scope.all())
    finally:
        searcher.close()
    assert len(hits) == 10
    assert all(json.loads(json.dumps(h.to_dict()))["id"] for h in hits)
    allowed = ids(tmp_path / "store.duckdb", selective)
    assert 10 <= len(allowed) < 100
    assert {int(h.id.split("-")[1]) for h in hits} <= allowed
    assert np.isfinite([h.score for h in hits]).all()


def test_cli_filters_or_not_and_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main
    from pipeline.config import compose, to_yaml

    prompts = ["refund for a damaged parcel", "reset my password", "bake bread"] * 10
    build_project(tmp_path, n=len(prompts), dim=8, prompts=prompts)
    cfg = compose(
        ["paths.store=store.duckdb", "paths.index_dir=index", "embed.model=test", "embed.dim=8"]
    )
    (tmp_path / "params.yaml").write_text(to_yaml(cfg), encoding="utf-8")

    def search(*filters: str) -> tuple[int, list[dict], str]:
        argv = ["search", "refund parcel password bread", "--mode", "keyword", "-k", "30"]
        argv += [arg for f in filters for arg in ("--filter", f)]
        code = main([*argv, "--json", "--root", str(tmp_path)])
        out = capsys.readouterr()
        return code, json.loads(out.out)["results"] if code == 0 else [], out.err

    code, hits, _ = search("label=support OR origin=real")
    assert code == 0 and hits
    assert {h["id"] for h in hits} == {f"rec-{i}" for i in range(30) if i % 10 == 0 or i % 2 == 0}
    _, hits, _ = search("NOT origin=synthetic", "metadata.n<6")
    assert {h["id"] for h in hits} == {"rec-0", "rec-2", "rec-4"}
    code, _, err = search("metadata.nope=1")
    assert code == 2 and err.strip() == (
        "error: filter on metadata.nope: no record has metadata key 'nope'"
    )


_PIECES = [*"()'\"\\ =<>!.", "AND", "OR", "NOT", " AND ", " OR ", "NOT ", "label", "metadata.a"]
_PIECES += ["quality", "created_at", "tags", "x", "2.1", "-", " "]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=14).map("".join))
def test_any_text_parses_or_fails_cleanly_and_prints_back(text: str) -> None:
    try:
        tree = parse_filter(text)
    except UserInputError:
        return
    assert parse_filter(str(tree)) == tree
