"""LangChain and LlamaIndex retrievers: the real libraries over a real index, in process and
over the real HTTP service with keys (scope and filters honoured)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from helpers.serve import build_index, build_store, start_serve, write_params

from pipeline.errors import AuthError, UserInputError
from pipeline.search.api import Searcher, SearchSettings
from pipeline.service.keys import create_key
from pipeline.store.scope import Scope

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from pipeline.integrations.langchain import PipelineRetriever
from pipeline.integrations.llamaindex import PipelineLlamaIndexRetriever
from pipeline.integrations.source import HttpSource, LocalSource

ALICE = {"a1", "a2"}  # the records of user alice in helpers/serve.py


@pytest.fixture
def searcher(tmp_path: Path):
    config = build_store(tmp_path)
    build_index(config)  # seeded vectors: keyword search needs no encoder
    searcher = Searcher(config.paths.index_dir, config.paths.store, SearchSettings(), None)
    yield searcher
    searcher.close()


def test_langchain_documents_carry_id_text_scores_and_metadata(searcher: Searcher) -> None:
    retriever = PipelineRetriever(source=LocalSource(searcher), k=3, mode="keyword")
    docs = retriever.invoke("refund for a damaged parcel")
    assert docs[0].id == "b1"
    assert docs[0].page_content == "refund for a damaged parcel\n\nwe will refund you"
    meta = docs[0].metadata
    assert meta["id"] == "b1" and meta["label"] == "billing" and meta["metadata"] == {"n": 4}
    assert meta["score"] > 0 and meta["scores"]["keyword"] > 0 and isinstance(meta["rid"], int)
    assert "prompt" not in meta and "response" not in meta


def test_filters_and_scope_in_process(searcher: Searcher) -> None:
    query = "password reset parcel capital france haiku"
    either = ["label=trivia OR label=creative"]
    retriever = PipelineRetriever(source=LocalSource(searcher), k=5, mode="keyword", filters=either)
    assert {d.metadata["label"] for d in retriever.invoke(query)} == {"trivia", "creative"}
    json_form = [{"not": {"field": "label", "value": "support"}}]
    retriever = PipelineRetriever(source=LocalSource(searcher), mode="keyword", filters=json_form)
    assert all(d.metadata["label"] != "support" for d in retriever.invoke(query))
    alice = LocalSource(searcher, Scope.of({"user_id": ["alice"]}))
    nodes = PipelineLlamaIndexRetriever(alice, k=5, mode="keyword").retrieve(query)
    assert nodes and {n.node.id_ for n in nodes} <= ALICE
    with pytest.raises(UserInputError, match="no record has metadata key 'tier'"):
        PipelineRetriever(
            source=LocalSource(searcher), mode="keyword", filters=["metadata.tier=gold"]
        ).invoke("x")


def test_llamaindex_nodes_carry_id_text_score_and_metadata(searcher: Searcher) -> None:
    retriever = PipelineLlamaIndexRetriever(LocalSource(searcher), k=2, mode="keyword")
    nodes = retriever.retrieve("capital of france")
    top = nodes[0]
    assert (
        top.node.id_ == "b2" and top.node.get_content() == "what is the capital of france\n\nparis"
    )
    assert top.score == pytest.approx(top.node.metadata["score"]) and top.score > 0
    assert top.node.metadata["metadata"] == {"n": 5} and top.node.metadata["user_id"] == "bob"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("integrations-serve")
    config = build_store(root)
    build_index(config, real_encoder=True)  # hybrid search over the service means something
    params = write_params(config, root)
    db = config.paths.service_db
    keys = {
        "reader": create_key(db, "reader", "rag-app")[0],
        "alice": create_key(db, "reader", "alice-rag", {"user_id": ["alice"]})[0],
    }
    proc, url, _ = start_serve(params, root)
    try:
        yield url, keys
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


@pytest.mark.slow  # a server process and the real encoder
def test_retrievers_over_the_service_honour_the_key_scope_and_filters(server) -> None:
    url, keys = server
    docs = PipelineRetriever.from_service(url, keys["reader"], k=3).invoke("reset my password")
    assert docs[0].id == "a1" and "click forgot password" in docs[0].page_content
    assert docs[0].metadata["scores"]["vector"] is not None  # hybrid: both sides scored

    alice = PipelineLlamaIndexRetriever.from_service(url, keys["alice"], k=10)
    nodes = alice.retrieve("refund for a damaged parcel")  # bob's record: out of alice's scope
    assert nodes and {n.node.id_ for n in nodes} <= ALICE

    filtered = PipelineRetriever.from_service(
        url, keys["reader"], k=10, filters=["NOT user_id=alice", "metadata.n>=5 OR label=billing"]
    )
    ids = {d.id for d in filtered.invoke("refund parcel")}
    assert ids and ids <= {"b1", "b2", "c1", "n1"}  # not alice's; n >= 5 or billing
    # The same filters in the JSON form, sent as JSON: the service compiles them alike.
    json_form = [
        {"not": {"field": "user_id", "value": "alice"}},
        {"or": [{"field": "metadata.n", "op": ">=", "value": 5},
                {"field": "label", "value": "billing"}]},
    ]  # fmt: skip
    as_json = PipelineLlamaIndexRetriever.from_service(url, keys["reader"], k=10, filters=json_form)
    assert {n.node.id_ for n in as_json.retrieve("refund parcel")} == ids

    with pytest.raises(UserInputError, match="no record has metadata key 'tier'"):
        HttpSource(url, keys["reader"]).hits("x", 3, "hybrid", ["metadata.tier=gold"])
    with pytest.raises(AuthError, match="401"):
        PipelineRetriever.from_service(url, "not-a-key").invoke("x")
