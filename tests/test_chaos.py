"""Chaos: the real CLI and HTTP service against each other, killed with -9 at chosen moments.

A small project (a 400-record sample, planted users with a unique token in each of their
texts and rejected rows of every kind, the linear probe, cached embeddings) is built once;
every scenario works on a fresh copy. After each: the accounting equation holds, `index
verify` passes, no input row is lost (each is kept, duplicate, rejected or erased), no
erasure is left unfinished, and every erased user's token and id are absent from every
file under data/ (but data/raw), reports/, mlruns/ and mlflow.db. Moments are chosen with
pause points (pipeline/io/pause.py) and awaited with deadlines, never with sleeps.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers.chaos import (
    Proc,
    Service,
    base_rows,
    cli,
    digest,
    eventually,
    searched_files,
    texts_of,
    token,
    user,
    write_planted,
)

pytestmark = pytest.mark.slow

USERS, PER_USER = 12, 8  # users 0-10 have records; user 11 has only rejected rows
REJECTED_ONLY = USERS - 1


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project every scenario copies: dedup, train, evaluate and index already run."""
    from pipeline.config import compose, to_yaml
    from pipeline.evaluate.mistakes import ARTIFACT
    from pipeline.sample import write_sample
    from pipeline.service.keys import create_key
    from pipeline.stages import dedup, evaluate, index, train

    root = tmp_path_factory.mktemp("chaos-base")
    write_sample(root / "data" / "raw", seed=3, n_records=400)
    donor = tmp_path_factory.mktemp("donor")
    write_sample(donor, seed=99, n_records=300)
    write_planted(root / "data" / "raw", donor, USERS, PER_USER)
    cfg = compose(
        ["evaluate.onnx=false", "trainer.max_epochs=4", "trainer.enable_progress_bar=false"]
    )
    (root / "params.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    assert dedup.run(cfg, root)["accounting"]["holds"]
    train.run(cfg, root)
    evaluate.run(cfg, root)
    index.run(cfg, root)
    key, _ = create_key(root / "data" / "service.duckdb", "admin")
    (root / "admin.key").write_text(key)
    # The search path the erasure must scrub: queries for the tokens, logged as the service does.
    from pipeline.service.querylog import QueryLog

    log = QueryLog(root / "data" / "service.duckdb")
    for n in range(USERS):
        log.record("k", "admin", f"what about {token(n)}", [f"user_id={user(n)}"], "keyword", 5,
                   [], 1.0)  # fmt: skip
    log.flush()
    # The search only means something if the tokens are where erasure must remove them.
    found = {p.relative_to(root).as_posix(): texts_of(p) for p in searched_files(root)}
    for place in ("data/dedup/store.duckdb", "data/dedup/records.parquet",
                  "data/index/keyword/vocab.txt", "data/service.duckdb"):  # fmt: skip
        assert token(0).encode() in found[place], place
    mistakes = found["reports/eval/mistakes.json"].decode()
    assert any(token(n) in mistakes for n in range(USERS)), "no planted user among the mistakes"
    tables = [data for name, data in found.items() if name.endswith(Path(ARTIFACT).name)]
    assert any(token(n).encode() in data for data in tables for n in range(USERS))
    return root


@pytest.fixture
def project(base: Path, tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(base, root, symlinks=True)
    return root


def _user_keys(base: Path, n: int) -> set[tuple[str, int]]:
    """(file, line) of every input row of planted user n."""
    rows = base_rows(base / "data" / "dedup" / "store.duckdb")
    return {k for k, (u, h, text) in rows.items()
            if u == user(n) or h == digest(user(n)) or token(n) in (text or "")}  # fmt: skip


def check(root: Path, base: Path, erased: list[int]) -> None:
    """The invariants every scenario must leave behind."""
    from pipeline.embed.cache import MODEL_FILE, content_keys
    from pipeline.index.verify import verify_index

    report = json.loads((root / "reports" / "dedup.json").read_text())
    assert report["accounting"]["holds"], report["accounting"]
    verified = verify_index(root / "data" / "index", root / "data" / "dedup" / "store.duckdb")
    assert verified["ok"], verified["problems"]
    assert cli(root, "erase", "--status").strip() == "no unfinished erasures"
    # No record lost: every input row of the base project is still stored, or was erased.
    before = base_rows(base / "data" / "dedup" / "store.duckdb")
    now = base_rows(root / "data" / "dedup" / "store.duckdb")
    gone = set(before) - set(now)
    allowed = set().union(*(_user_keys(base, n) for n in erased)) if erased else set()
    assert gone <= allowed, f"lost: {sorted(gone - allowed)[:5]}"
    assert gone == allowed, f"not erased: {sorted(allowed - gone)[:5]}"
    # No trace of an erased user in any file.
    needles = [s for n in erased for s in (token(n), user(n))]
    for path in searched_files(root):
        data = texts_of(path)
        leaked = [s for s in needles if s.encode() in data]
        assert not leaked, f"{path.relative_to(root)} still holds {leaked}"
    listed = (root / "data" / "erasures.txt").read_text().split()
    assert {digest(user(n)) for n in erased} <= set(listed)
    # Nor in the embedding cache, whose keys are hashes of the texts.
    texts = [t for k, (u, _, t) in before.items() for n in erased if u == user(n) and t]
    for model_dir in (root / "data" / "cache" / "embeddings" / "vectors").glob("*"):
        keys = content_keys(texts, (model_dir / MODEL_FILE).read_text())
        for shard in model_dir.glob("shard-*.keys.npy"):
            assert not np.isin(np.load(shard), keys).any(), shard


def _erase_http(service: Service, root: Path, n: int, results: dict) -> None:
    key = (root / "admin.key").read_text()
    response = httpx.post(f"{service.url}/erase", json={"user_id": user(n)},
                          headers={"Authorization": f"Bearer {key}"}, timeout=120)  # fmt: skip
    results[n] = response


def test_concurrent_erasures_never_lose_each_other(base: Path, project: Path) -> None:
    erased: list[int] = []
    for a, b in ((0, 1), (2, 3), (4, REJECTED_ONLY)):  # CLI against CLI, three pairs
        first = Proc(project, ["erase", "--user-id", user(a), "--json"])
        second = Proc(project, ["erase", "--user-id", user(b), "--json"])
        rows = [json.loads(p.finish()) for p in (first, second)]
        assert rows[0]["records"] >= 1 and rows[1]["rejected"] >= 1
        erased += [a, b]
        check(project, base, erased)
    service = Service(project)
    try:
        results: dict[int, httpx.Response] = {}
        # HTTP against CLI, then HTTP against HTTP.
        threads = [threading.Thread(target=_erase_http, args=(service, project, n, results))
                   for n in (5, 7, 8)]  # fmt: skip
        threads[0].start()
        proc = Proc(project, ["erase", "--user-id", user(6)])
        threads[0].join()
        proc.finish()
        for t in threads[1:]:
            t.start()
        for t in threads[1:]:
            t.join()
        erased += [5, 6, 7, 8]
        assert {n: r.status_code for n, r in results.items()} == {5: 200, 7: 200, 8: 200}
        key = (project / "admin.key").read_text()
        gone = httpx.get(f"{service.url}/records/cz05-0", timeout=60,
                         headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        assert gone.status_code == 404
    finally:
        service.stop()
    check(project, base, erased)


def test_erase_during_dedup_and_during_index_build_waits_then_holds(
    base: Path, project: Path
) -> None:
    dedup = Proc(project, ["dedup"], pause="dedup:written")  # store built, not yet published
    dedup.wait_for("paused at dedup:written")
    erase = Proc(project, ["erase", "--user-id", user(0)])
    erase.wait_for(r"erase: waiting up to .* for `pipeline dedup`")
    dedup.resume()
    dedup.finish()
    erase.finish()
    check(project, base, [0])

    build = Proc(project, ["index", "build"], pause="index:embedded")
    build.wait_for("paused at index:embedded")
    service = Service(project)
    try:
        results: dict[int, httpx.Response] = {}
        thread = threading.Thread(target=_erase_http, args=(service, project, 1, results))
        thread.start()
        service.proc.wait_for("POST /erase: waiting for the writer lock held by `pipeline index")
        build.resume()
        build.finish()
        thread.join()
        assert results[1].status_code == 200, results[1].text
    finally:
        service.stop()
    # The next `dvc repro` keeps them out: before validation, whatever the row.
    cli(project, "dedup")
    cli(project, "index", "build")
    report = json.loads((project / "reports" / "dedup.json").read_text())
    assert report["erased"] == len(_user_keys(base, 0) | _user_keys(base, 1))
    check(project, base, [0, 1])


@pytest.mark.parametrize(
    ("stage", "points"),
    [(["dedup"], ["dedup:locked", "dedup:written", "dedup:published"]),
     (["index", "build"], ["index:locked", "index:embedded", "index:published"])],
)  # fmt: skip
def test_killed_stages_leave_the_published_data_whole(
    base: Path, project: Path, stage: list[str], points: list[str]
) -> None:
    cli(project, "erase", "--user-id", user(2))
    for point in points:
        proc = Proc(project, stage, pause=point)
        proc.wait_for(f"paused at {point}")
        proc.kill9()
        check(project, base, [2])
    cli(project, *stage)  # a re-run completes and cleans up after the killed ones
    cli(project, "index", "build")  # as `dvc repro` would after a dedup
    assert not list((project / "data").rglob("*.tmp"))
    check(project, base, [2])


# (moment the erase is killed, the writer that completes it)
KILLED_ERASES = [
    ("erase:intent", ["dedup"]),
    ("erase:planned", ["index", "build"]),
    ("erase:store", ["serve"]),
    ("erase:index_removed", ["erase", "--user-id", user(REJECTED_ONLY)]),
    ("erase:service", ["dedup"]),
]


def test_killed_erasures_are_listed_and_completed_by_the_next_writer(
    base: Path, project: Path
) -> None:
    erased: list[int] = []
    for n, (point, completer) in enumerate(KILLED_ERASES):
        proc = Proc(project, ["erase", "--user-id", user(n)], pause=point)
        proc.wait_for(f"paused at {point}")
        proc.kill9()
        status = Proc(project, ["erase", "--status", "--json"])
        [entry] = json.loads(status.finish(code=1))
        assert entry["user_hash"] == digest(user(n))
        if completer == ["serve"]:
            Service(project).stop()  # its start completes unfinished erasures
        else:
            cli(project, *completer)
        if completer == ["dedup"]:
            cli(project, "index", "build")  # as `dvc repro` would after a dedup
        erased += [n, REJECTED_ONLY] if "erase" in completer else [n]
        check(project, base, erased)


def test_two_services_over_one_store(base: Path, project: Path) -> None:
    first, second = Service(project), Service(project)
    key = (project / "admin.key").read_text()
    headers = {"Authorization": f"Bearer {key}"}
    try:
        for service in (first, second):
            for n in (0, 1):
                body = {"text": f"{token(n)}", "mode": "keyword", "k": 5}
                hits = httpx.post(f"{service.url}/search", json=body, headers=headers, timeout=60)
                assert user(n) in hits.text
        results: dict[int, httpx.Response] = {}
        threads = [threading.Thread(target=_erase_http, args=(s, project, n, results))
                   for s, n in ((first, 0), (second, 1))]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {n: r.status_code for n, r in results.items()} == {0: 200, 1: 200}
        # Each service answers 404 at once for the user it erased, and for the other's
        # within serve.reload_seconds (it swaps to the replaced store): polled to a deadline.
        for service in (first, second):
            for n in (0, 1):
                url = f"{service.url}/records/cz{n:02d}-0"
                assert eventually(lambda u=url: httpx.get(u, headers=headers).status_code == 404)
            body = {"text": "refund", "mode": "keyword", "k": 5}
            found = httpx.post(f"{service.url}/search", json=body, headers=headers, timeout=60)
            assert found.is_success, found.text + "".join(service.proc.err)[-3000:]
    finally:
        first.stop()
        second.stop()
    check(project, base, [0, 1])
