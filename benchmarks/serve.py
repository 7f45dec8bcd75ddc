"""HTTP search service under load: 8 concurrent clients on loopback, steady and during republish.

    python benchmarks/serve.py [--records 2000] [--clients 8] [--requests 600] [--max-seconds 60]
                               [--republish 3] [--set search.encode_threads=2 ...]

1. Data: the first --records t0-prompts records (../shared/data) as a store, records.parquet
   and an index embedded with the real MiniLM encoder (embedding all 55k texts on 2 shared
   cores takes too long for a bounded benchmark; the index is exact Flat either way).
2. `pipeline serve` in a subprocess on 127.0.0.1 (one worker), a reader API key.
3. --clients threads, each with a keep-alive httpx client, send vector (then hybrid) searches
   of short queries made from held-out t0 prompts; bounded by --requests and --max-seconds.
   Every request of the run sends a query no other request sends, so the service's query
   vector cache cannot help (the headline); one phase repeats 100 queries to show the cache.
4. Batching on/off, same run: a second server with query micro-batching flipped
   (search.encode_batch 1 <-> 16) and the cache off takes the same vector load, in rounds
   alternating with the first server's.
5. The same vector load while the index is rebuilt and republished --republish times.
6. Reference, same run: other queries through the in-process `Searcher` (what a user
   embedding the library would call): the ratio is the cost of HTTP, auth and the query log.
Results are printed and appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
T0 = REPO.parent / "shared" / "data" / "t0-prompts" / "t0-prompts.jsonl.gz"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # helpers.store: a store from a table, as the tests build

for _name, _value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                      ("TOKENIZERS_PARALLELISM", "false"), ("MLFLOW_DISABLE_TELEMETRY", "true"),
                      ("DVC_NO_ANALYTICS", "1")):  # fmt: skip
    os.environ.setdefault(_name, _value)


AB_ROUNDS = 3  # the batching on/off comparison alternates this many rounds


def read_t0(n: int, n_queries: int) -> tuple[list[dict], list[str]]:
    """The first n records, and n_queries distinct short queries from the prompts after them."""
    rows, queries = [], {}
    with gzip.open(T0, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if len(rows) < n:
                rows.append(row)
            else:
                queries[" ".join(row["prompt"].split()[:12])] = None  # t0 prompts share templates
                if len(queries) >= n_queries:
                    break
    return rows, list(queries)


class QueryPool:
    """Hands each phase its own slice of the distinct queries, so no query is sent twice."""

    def __init__(self, queries: list[str]) -> None:
        self.queries, self.used, self.wrapped = queries, 0, False

    def take(self, n: int) -> list[str]:
        if self.used + n > len(self.queries):
            self.used, self.wrapped = 0, True  # a repeat could hit the cache: reported
        out = self.queries[self.used : self.used + n]
        self.used += n
        return out


def build(root: Path, rows: list[dict]) -> dict:
    """Store, records.parquet and a published index under root/data; returns the config."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from helpers.store import write_records_store

    from pipeline.config import compose
    from pipeline.dedup.ids import rid_of
    from pipeline.embed import EmbedSettings, embed_texts
    from pipeline.embed.query import ensure_query_model
    from pipeline.index.build import publish_index
    from pipeline.index.factory import IndexSettings
    from pipeline.record import RECORD_SCHEMA

    records = [
        {"rid": rid_of(r["id"]), "id": r["id"], "prompt": r["prompt"], "response": r["response"],
         "label": r["task"], "user_id": None, "session_id": None, "parent_id": None,
         "turn": None, "created_at": None, "quality": None, "tags": [r["template"]],
         "origin": "real", "source": r["source_dataset"], "metadata": "{}",
         "file": "t0-prompts.jsonl.gz", "line": i + 1}
        for i, r in enumerate(rows)
    ]  # fmt: skip
    table = pa.Table.from_pylist(records, schema=RECORD_SCHEMA)
    cfg = compose()
    (root / "data" / "dedup").mkdir(parents=True)
    write_records_store(root / cfg.paths.store, table)
    pq.write_table(table, root / cfg.paths.records)
    embed = EmbedSettings.from_cfg(cfg.embed)
    cache = REPO / cfg.paths.embed_cache  # shared with the pipeline: re-runs embed nothing
    start = time.perf_counter()
    vectors = embed_texts([r["prompt"] for r in records], embed, cache_dir=cache)
    embed_seconds = time.perf_counter() - start
    ensure_query_model(embed, cache)
    encoder = {"model": embed.model, "dim": embed.dim, "backend": embed.backend}
    settings = IndexSettings.from_cfg(cfg.index)
    publish_index(
        root / cfg.paths.index_dir, table["rid"].to_numpy(), vectors,
        [r["prompt"] for r in records], settings, encoder,
    )  # fmt: skip
    for key in ("store", "records", "erasures", "index_dir", "service_db"):
        cfg.paths[key] = str(root / cfg.paths[key])
    cfg.paths.embed_cache = str(cache)
    cfg.serve.reload_seconds = 0.5
    return {"cfg": cfg, "vectors": vectors, "table": table, "settings": settings,
            "encoder": encoder, "embed_seconds": embed_seconds}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(params: Path, port: int, workers: int = 1) -> subprocess.Popen:
    """`pipeline serve` on loopback; returns once /health says ok."""
    import httpx

    log = open(params.with_suffix(".log"), "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "--params", str(params),
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: see {params.with_suffix('.log')}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["status"] == "ok":
                return proc
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit("server did not become healthy within 180 s")


def load(url: str, key: str, queries: list[str], mode: str, clients: int, requests: int,
         max_seconds: float, server: subprocess.Popen | None = None) -> dict:  # fmt: skip
    """Closed-loop load: `clients` threads share a budget of requests and seconds.

    With `server`, also its CPU ms per request: less noisy than latency on a shared
    machine, where other jobs take wall time from a request but not CPU time.
    """
    import httpx

    counter = iter(range(requests))
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + max_seconds

    def client(worker: int) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                body = {"text": queries[i % len(queries)], "mode": mode, "k": 10}
                start = time.perf_counter()
                try:
                    response = http.post("/search", json=body)
                    ok = response.status_code == 200
                    detail = f"{response.status_code} {response.text[:120]}"
                except httpx.HTTPError as exc:
                    ok, detail = False, repr(exc)
                took = (time.perf_counter() - start) * 1000
                with lock:
                    latencies.append(took)
                    if not ok:
                        errors.append(detail)

    cpu = cpu_seconds(server.pid) if server is not None else float("nan")
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    result = summarise(latencies, errors, time.perf_counter() - start)
    if server is not None:
        result["cpu_ms"] = (cpu_seconds(server.pid) - cpu) * 1000 / max(1, len(latencies))
    return result


def summarise(latencies: list[float], errors: list[str], seconds: float) -> dict:
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "error_sample": errors[:3],
        "rps": len(latencies) / seconds if seconds else 0.0,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "latencies": list(latencies),
        "seconds": seconds,
    }


def _stat(pid: int | str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its children (uvicorn's workers), on
    Linux; NaN where /proc is absent."""
    fields = _stat(pid)
    if fields is None:
        return float("nan")
    total = int(fields[11]) + int(fields[12])
    for entry in Path("/proc").iterdir():
        child = _stat(entry.name) if entry.name.isdigit() else None
        if child is not None and int(child[1]) == pid:  # field 4: the parent's pid
            total += int(child[11]) + int(child[12])
    return total / os.sysconf("SC_CLK_TCK")


def merge(parts: list[dict]) -> dict:
    """One phase's summary from the rounds it was measured in."""
    merged = summarise(
        [x for p in parts for x in p["latencies"]],
        [e for p in parts for e in p["error_sample"]],
        sum(p["seconds"] for p in parts),
    )
    merged["errors"] = sum(p["errors"] for p in parts)
    if all("cpu_ms" in p for p in parts):
        cpu = sum(p["cpu_ms"] * p["requests"] for p in parts)
        merged["cpu_ms"] = cpu / max(1, merged["requests"])
    return merged


def in_process(cfg, queries: list[str], mode: str, clients: int, requests: int) -> dict:
    """The same queries through the library's Searcher, from `clients` threads."""
    from pipeline.search.project import open_searcher
    from pipeline.store.scope import Scope

    searcher = open_searcher(
        cfg.paths.index_dir, cfg.paths.store, cfg.paths.embed_cache, cfg.search, cfg.embed
    )
    everything = Scope.all()
    searcher.search("warm up", k=10, mode=mode, scope=everything)  # encoder loads untimed
    latencies: list[float] = []

    def one(i: int) -> None:
        start = time.perf_counter()
        searcher.search(queries[i % len(queries)], k=10, mode=mode, scope=everything)
        latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - start
    batcher = searcher._encode.batcher
    searcher.close()
    result = summarise(latencies, [], seconds)
    result["mean_batch"] = batcher.items / max(1, batcher.batches) if batcher else 1.0
    return result


def republisher(built: dict, times: int, stop: threading.Event, done: list[float]) -> None:
    """Rebuild and republish the index `times` times (a real FAISS build each time)."""
    from pipeline.index.build import publish_index

    table, cfg = built["table"], built["cfg"]
    texts = table["prompt"].to_pylist()
    for _ in range(times):
        if stop.is_set():
            return
        start = time.perf_counter()
        publish_index(cfg.paths.index_dir, table["rid"].to_numpy(), built["vectors"], texts,
                      built["settings"], built["encoder"])  # fmt: skip
        done.append(time.perf_counter() - start)
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=4000, help="distinct queries to draw")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=600, help="per phase")
    parser.add_argument("--max-seconds", type=float, default=60, help="per phase")
    parser.add_argument("--republish", type=int, default=3)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for both servers, e.g. search.encode_threads=2",
    )
    parser.add_argument("--no-results", action="store_true", help="do not append RESULTS.md")
    args = parser.parse_args()
    if not T0.exists():
        print(f"{T0} is absent: nothing to benchmark", file=sys.stderr)
        return 0

    from omegaconf import OmegaConf

    from pipeline.config import CONF_DIR, to_yaml
    from pipeline.overrides import apply_overrides
    from pipeline.service.keys import create_key

    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        rows, queries = read_t0(args.records, args.queries)
        pool = QueryPool(queries)
        built = build(work, rows)
        # The same override rules as the CLI's -S: unknown keys are refused, groups recomposed.
        plain = OmegaConf.to_container(built["cfg"], resolve=True)
        cfg = built["cfg"] = OmegaConf.create(apply_overrides(plain, args.set, CONF_DIR))
        params = work / "params.yaml"
        params.write_text(to_yaml(cfg), encoding="utf-8")
        # The comparison server flips micro-batching (1 <-> 16) and has no cache.
        other_batch = 1 if int(cfg.search.encode_batch) > 1 else 16
        other = copy.deepcopy(cfg)
        other.search.encode_batch, other.search.encode_cache = other_batch, 0
        other_name = f"vector, encode_batch={other_batch}, cache off"
        params_off = work / "params-other.yaml"
        params_off.write_text(to_yaml(other), encoding="utf-8")
        key, _ = create_key(cfg.paths.service_db, "reader", "bench")
        port, port_off = free_port(), free_port()
        started = time.perf_counter()
        procs.append(start_server(params, port, int(cfg.serve.workers)))
        startup = time.perf_counter() - started
        procs.append(start_server(params_off, port_off, int(cfg.serve.workers)))
        url, url_off = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port_off}"
        on, off = procs  # the servers, for their CPU time
        # Warm both servers under the full concurrency (encoder, DuckDB and page caches):
        # without it the first measured round of whichever server comes first carries the
        # cold start into its p99.
        for warm in (url, url_off):
            load(warm, key, pool.take(100), "vector", args.clients, 100, 60)
        phases = {}
        # One client: the service time of a request with no queueing behind others.
        phases["vector, 1 client"] = load(
            url, key, pool.take(200), "vector", 1, 200, args.max_seconds, on
        )
        n, budget = args.requests, (args.clients, args.requests, args.max_seconds)
        # Before/after in alternating rounds (on, off, off, on, on, off): a machine whose load
        # drifts during the run weighs on both alike.
        rounds: dict[str, list[dict]] = {url: [], url_off: []}
        process = {url: on, url_off: off}
        share = (args.clients, n // AB_ROUNDS, args.max_seconds / AB_ROUNDS)
        for r in range(AB_ROUNDS):
            for server in (url, url_off) if r % 2 == 0 else (url_off, url):
                rounds[server].append(
                    load(server, key, pool.take(n // AB_ROUNDS), "vector", *share, process[server])
                )
        phases["vector"] = merge(rounds[url])
        phases[other_name] = merge(rounds[url_off])
        phases["vector, 100 repeated queries (cache)"] = load(
            url, key, pool.take(100), "vector", *budget, on
        )
        phases["hybrid"] = load(url, key, pool.take(n), "hybrid", *budget, on)
        stop, rebuilds = threading.Event(), []
        thread = threading.Thread(target=republisher, args=(built, args.republish, stop, rebuilds))
        thread.start()
        phases["vector, republishing"] = load(url, key, pool.take(n), "vector", *budget, on)
        stop.set()
        thread.join()
        phases["vector, republishing"]["republished"] = len(rebuilds)
        reference = in_process(cfg, pool.take(n), "vector", args.clients, args.requests)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        "| phase | requests | errors | req/s | p50 ms | p99 ms | server CPU ms/request |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    nan = float("nan")
    for name, r in phases.items():
        lines.append(f"| HTTP {name} | {r['requests']} | {r['errors']} | {r['rps']:.1f} | "
                     f"{r['p50']:.1f} | {r['p99']:.1f} | {r.get('cpu_ms', nan):.1f} |")  # fmt: skip
    ref = reference
    lines.append(f"| in-process Searcher, vector (reference) | {ref['requests']} | 0 | "
                 f"{ref['rps']:.1f} | {ref['p50']:.1f} | {ref['p99']:.1f} | - |")  # fmt: skip
    v = phases["vector"]
    o = phases[other_name]
    batched, unbatched = (o, v) if other_batch > 1 else (v, o)
    single = phases["vector, 1 client"]
    s = cfg.search
    settings = (
        f"search.encode_batch={s.encode_batch}, encode_cache={s.encode_cache}, "
        f"encode_threads={s.encode_threads}"
    )
    ratio = (
        f"HTTP / in-process, vector: p50 {v['p50'] / reference['p50']:.2f}x, "
        f"p99 {v['p99'] / reference['p99']:.2f}x, req/s {v['rps'] / reference['rps']:.2f}x"
    )
    repub = phases["vector, republishing"]
    notes = [
        f"{args.records} t0-prompts records (MiniLM, embedded in {built['embed_seconds']:.0f} s "
        f"incl. cache), {args.clients} clients, <= {args.requests} requests or "
        f"{args.max_seconds:.0f} s per phase; server start-up {startup:.1f} s; "
        f"{repub['republished']} index republishes during the republish phase, "
        f"{repub['errors']} failed requests.",
        f"Server settings: {settings}{' (--set ' + ' '.join(args.set) + ')' if args.set else ''}"
        f"; the comparison server: encode_batch={other_batch}, encode_cache=0. Every request "
        f"sends a query no "
        f"other request of the run sends, so the cache cannot help, except the 'repeated' "
        f"phase (100 queries){'; the query pool ran out and wrapped' if pool.wrapped else ''}.",
        f"Micro-batching off -> on (encode_batch 1 -> 16), unique queries, {args.clients} "
        f"clients: p50 {unbatched['p50']:.1f} -> {batched['p50']:.1f} ms, p99 "
        f"{unbatched['p99']:.1f} -> {batched['p99']:.1f} ms, req/s {unbatched['rps']:.1f} -> "
        f"{batched['rps']:.1f}, server CPU {unbatched['cpu_ms']:.1f} -> "
        f"{batched['cpu_ms']:.1f} ms per request "
        f"({AB_ROUNDS} alternating rounds each); in-process mean batch "
        f"{reference['mean_batch']:.1f} queries.",
        ratio + ".",
        f"Goal p99 < 50 ms for vector search (unique queries): measured {v['p99']:.1f} ms with "
        f"{args.clients} clients ({'met' if v['p99'] < 50 else 'not met'}), "
        f"{single['p99']:.1f} ms with one client; the machine's load average was "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared with other jobs; the "
        "load generator runs on them too).",
    ]
    for name, r in phases.items():
        if r["errors"]:
            notes.append(f"errors in {name}: {r['error_sample']}")
    table = "\n".join(lines)
    print(table)
    print("\n".join(notes))
    if not args.no_results:
        load_avg = os.getloadavg()[0]
        section = (
            f"\n## Search service under load ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{os.cpu_count()} cores, load average {load_avg:.1f}, {platform.python_version()})\n\n"
            f"`python benchmarks/serve.py --records {args.records} --clients {args.clients} "
            f"--requests {args.requests} --max-seconds {args.max_seconds:.0f} "
            f"--republish {args.republish}"
            + "".join(f" --set {item}" for item in args.set)
            + f"`\n\n{table}\n\n"
            + "\n".join(f"- {n}" for n in notes)
            + "\n"
        )
        with open(REPO / "benchmarks" / "RESULTS.md", "a", encoding="utf-8") as fh:
            fh.write(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
