"""The query encoder's micro-batcher and cache: batching rules on a plain function (fast), and
the real ONNX MiniLM encoder: a batch gives the vectors of single encodes (slow: it exports)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers.serve import build_index, build_store

from pipeline.search.batcher import MicroBatcher
from pipeline.store.scope import Scope


class Gated:
    """A batch function that records its batches and can hold the first one until released."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.started.set()
        self.release.wait(10)
        return [i * 10 for i in items]


def test_idle_call_runs_alone_and_at_once() -> None:
    fn = Gated()
    batcher = MicroBatcher(fn, max_batch=8)
    assert batcher(3) == 30
    assert batcher(4) == 40
    assert fn.batches == [[3], [4]]
    batcher.close()


def test_calls_arriving_during_a_batch_share_the_next_one() -> None:
    fn = Gated(hold_first=True)
    batcher = MicroBatcher(fn, max_batch=4)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher, 0)
        assert fn.started.wait(5)  # the worker is busy with [0]
        rest = [pool.submit(batcher, i) for i in range(1, 7)]
        while batcher._queue.qsize() < 6:  # all six are queued behind the running batch
            threading.Event().wait(0.001)
        fn.release.set()
        assert first.result(5) == 0
        assert [f.result(5) for f in rest] == [10 * i for i in range(1, 7)]
    # The six waiting calls ran as two batches bounded by max_batch, in arrival order.
    assert fn.batches == [[0], [1, 2, 3, 4], [5, 6]]
    assert (batcher.batches, batcher.items) == (3, 7)
    batcher.close()


def test_a_failing_batch_fails_each_of_its_callers_and_the_batcher_goes_on() -> None:
    calls = []

    def flaky(items: list[str]) -> list[str]:
        calls.append(items)
        if len(calls) == 1:
            raise ValueError("model not exported")
        return [s.upper() for s in items]

    batcher = MicroBatcher(flaky, max_batch=4)
    with pytest.raises(ValueError, match="model not exported"):
        batcher("a")
    assert batcher("b") == "B"
    batcher.close()


def test_wrong_result_count_is_an_error_not_a_hang() -> None:
    batcher = MicroBatcher(lambda items: [], max_batch=2)
    with pytest.raises(RuntimeError, match="0 results for a batch of 1"):
        batcher("x")
    batcher.close()


def test_close_stops_the_worker_and_refuses_later_calls() -> None:
    batcher = MicroBatcher(Gated(), max_batch=2, name="closing")
    assert batcher(1) == 10
    thread = batcher._thread
    batcher.close()
    batcher.close()  # idempotent
    assert thread is not None and not thread.is_alive()
    with pytest.raises(RuntimeError, match="closing is closed"):
        batcher(2)
    with pytest.raises(ValueError, match="max_batch 0"):
        MicroBatcher(Gated(), max_batch=0)


# --- the real encoder --------------------------------------------------------------------------

QUERIES = [
    "refund for a damaged parcel",
    "How do I reset my password?",
    "  whitespace around a query  ",
    "a much longer query about the capital of France and the rivers that run through it",
    "haiku",
    "translate good morning to German",
    "Ünïcödé and emoji 🚀 in a query",
    "refund for a damaged parcel",  # a repeat inside one batch
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding the ONNX export of the bundled MiniLM (needs torch, once)."""
    from pipeline.embed import EmbedSettings
    from pipeline.embed.query import ensure_query_model

    cache_dir = tmp_path_factory.mktemp("query-encoder")
    ensure_query_model(EmbedSettings(), cache_dir)
    return cache_dir


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow
def test_batched_vectors_equal_single_encodes(exported: Path) -> None:
    from pipeline.embed import EmbedSettings
    from pipeline.embed.query import QueryEncoder
    from pipeline.search.encoder import QueryEncoding

    single = QueryEncoder(EmbedSettings(), exported)
    alone = np.stack([single.encode(q) for q in QUERIES])
    # One forward pass over all queries, padded to the longest.
    encoding = QueryEncoding(EmbedSettings(), exported, batch=16, cache=0)
    batched = np.stack(encoding.encode_many(QUERIES))
    assert cosines(batched, alone).min() > 0.9999
    encoding.close()
    # Concurrent callers: the first call loads the model on the worker, so the others
    # queue behind it and are encoded together; each caller still gets its own vector.
    concurrent = QueryEncoding(EmbedSettings(), exported, batch=16, cache=0)
    barrier = threading.Barrier(len(QUERIES))

    def call(text: str) -> np.ndarray:
        barrier.wait()
        return concurrent(text)

    with ThreadPoolExecutor(len(QUERIES)) as pool:
        vectors = np.stack(list(pool.map(call, QUERIES)))
    assert cosines(vectors, alone).min() > 0.9999
    assert concurrent.batcher is not None and concurrent.batcher.items == len(QUERIES)
    assert concurrent.batcher.batches < len(QUERIES)
    concurrent.close()


@pytest.mark.slow
def test_cache_returns_recent_vectors_and_forgets_the_oldest(exported: Path) -> None:
    from pipeline.embed import EmbedSettings
    from pipeline.search.encoder import QueryEncoding

    encoding = QueryEncoding(EmbedSettings(), exported, batch=1, cache=2)
    assert encoding.batcher is None  # batch=1: each caller encodes in its own thread
    first = encoding("refund for a damaged parcel")
    assert encoding(" refund for a damaged parcel ") is first  # the tokenizer strips too
    assert encoding.cache_hits == 1
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 1.0  # a cached vector is shared: nobody may change it
    encoding("second")
    encoding("third")  # evicts the first, least recently used
    again = encoding("refund for a damaged parcel")
    assert again is not first and encoding.cache_hits == 1
    np.testing.assert_allclose(again, first, atol=1e-6)
    encoding.close()


@pytest.mark.slow
def test_searcher_takes_the_encoder_settings_and_closes_its_batcher(
    exported: Path, tmp_path: Path
) -> None:
    from pipeline.embed import EmbedSettings
    from pipeline.search.api import Searcher, SearchSettings

    config = build_store(tmp_path)
    build_index(config)
    settings = SearchSettings(encode_batch=4, encode_cache=0, encode_threads=1)
    searcher = Searcher.open(
        config.paths.index_dir, config.paths.store, settings, EmbedSettings(), exported
    )
    encoding = searcher._encode
    assert encoding.batcher is not None and encoding.batcher.max_batch == 4
    assert searcher.search("refund for a damaged parcel", k=3, mode="vector", scope=Scope.all())
    worker = encoding.batcher._thread
    searcher.close()
    assert worker is not None and not worker.is_alive()
