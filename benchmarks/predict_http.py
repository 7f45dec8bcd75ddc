"""POST /predict under load: 1 and 8 clients on loopback against mlflow.pyfunc in process on
the same registered model, same run, same texts.

    .venv/bin/python benchmarks/predict_http.py [--workdir /tmp/predict-bench] [--requests 400]
                                                [--max-seconds 60]

Setup is benchmarks/predict.py's (`build`: the bundled sample through dedup, train and
evaluate, version 1 registered with its predictor/ artifacts; reused from --workdir), and
so are the texts (a t0-prompts subsample) and the peer (`pyfunc`: mlflow.pyfunc.load_model
on models:/<name>/1, features from the training featuriser). Bounded: each phase stops at
--requests requests or --max-seconds, whichever first (~3-5 min here, 2 shared cores).

1. `pipeline serve` in a subprocess on 127.0.0.1 (one worker), the champion alias on
   version 1, a reader key; 1 client, then 8 (threads, keep-alive httpx clients), one text
   per request; every prediction is logged as in production (the log's embedding runs in
   the maintenance thread, so it competes for the cores like it would).
2. Peer: the pyfunc callable, one text per call, from 1 and from 8 threads.
Appends a section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from predict import build, pyfunc, texts  # noqa: E402  (benchmarks/predict.py)
from results import append_section, offline  # noqa: E402


def load(
    call: Callable[[str], None], data: list[str], clients: int, args: argparse.Namespace
) -> dict:
    """Latencies (ms) and throughput of `call` from `clients` threads, bounded."""
    latencies: list[float] = []
    lock = threading.Lock()
    budget = iter(range(args.requests))

    def worker(offset: int) -> None:
        i = offset
        while time.monotonic() < deadline:
            with lock:
                if next(budget, None) is None:
                    return
            started = time.perf_counter()
            call(data[i % len(data)])
            took = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(took)
            i += clients

    call(data[0])  # warm-up, before the clock: a loaded machine's first call can take long
    deadline = time.monotonic() + args.max_seconds
    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    lat = np.array(latencies)
    if not len(lat):
        raise RuntimeError(f"no call finished within --max-seconds {args.max_seconds:g}")
    return {"n": len(lat), "per_s": len(lat) / seconds, "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99))}  # fmt: skip


def main() -> int:
    import httpx
    from helpers.serve import start_serve
    from mlflow import MlflowClient

    from pipeline.predict.settings import PredictSettings
    from pipeline.service.keys import create_key

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/predict-bench"))
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    offline()
    import os

    cfg = build(args.workdir)
    load_start = os.getloadavg()[0]
    data = texts(args.workdir, args.texts)
    s = PredictSettings.from_cfg(cfg, args.workdir)
    MlflowClient(s.tracking_uri, registry_uri=s.tracking_uri).set_registered_model_alias(
        s.registered_model, "champion", "1"
    )
    key, _ = create_key(args.workdir / str(cfg.paths.service_db), "reader", "bench")
    params = args.workdir / "params.yaml"
    proc, url, _ = start_serve(params, args.workdir)
    rows = {}
    try:
        local = threading.local()

        def http(text: str) -> None:
            if not hasattr(local, "client"):
                local.client = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60)
            response = local.client.post(url + "/predict", json={"text": text})
            response.raise_for_status()

        for clients in (1, 8):
            rows[f"POST /predict, {clients} client(s)"] = load(http, data, clients, args)
            print(clients, rows[f"POST /predict, {clients} client(s)"], flush=True)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a slow drain on a loaded machine: keep the figures
            print("serve did not stop within 60 s of SIGINT; killed", file=sys.stderr)
            proc.kill()
            proc.wait()
    peer = pyfunc(cfg, args.workdir)
    for clients in (1, 8):
        rows[f"mlflow.pyfunc in process, {clients} thread(s)"] = load(
            lambda text: peer([text]), data, clients, args
        )
    lines = [
        f"Model: the sample's default (hybrid) version 1; {len(data)} t0 prompts, one per request; "
        f"each phase bounded by {args.requests} requests or {args.max_seconds:g} s; the "
        f"phases run one after another (not interleaved); load average {load_start:.1f} at "
        f"the start, {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| path | requests | texts/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
        *(f"| {name} | {r['n']} | {r['per_s']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} |"
          for name, r in rows.items()),
    ]  # fmt: skip
    print("\n".join(lines))
    if not args.no_append:
        command = "python benchmarks/predict_http.py " + " ".join(sys.argv[1:])
        append_section("POST /predict over HTTP vs mlflow.pyfunc", command.strip(), lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
