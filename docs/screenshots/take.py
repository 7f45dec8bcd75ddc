"""Screenshots of the MLflow UI on this project's tracking store (docs/tracking.md).

Starts `mlflow server` on loopback over the store in params.yaml's `tracking`, takes the
model experiment's runs table, the best run's page and the compare page of the two best
evaluated runs with headless Chromium (Debian's `chromium`), writes small PNGs beside this
file and stops the server. Run it after `make run` (and a second model run):

    .venv/bin/python docs/screenshots/take.py [--root .] [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
WAIT_SECONDS = 300.0  # the server's start-up: minutes on a busy 2-core machine
SHOT_SECONDS = 300  # one Chromium screenshot on a busy machine
RENDER_MS = 20000  # Chromium's virtual time for the single-page app to fetch and draw
# Virtual time stands still while a request is pending: on a loaded machine the compare page
# (and an artifact preview) never finished within SHOT_SECONDS; a shot at the load event
# (`--timeout`) is a blank skeleton, so a stuck shot is abandoned and reported instead.


def main() -> int:
    """Take the three screenshots; exit 1 with a message when a step fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="project root")
    parser.add_argument("--out", type=Path, default=HERE, help="where the PNGs go")
    parser.add_argument("--size", default="1440,1000", help="window width,height")
    parser.add_argument("--page", action="append", help="only these pages (default: all)")
    parser.add_argument("--run", action="append", help="a run id to show, twice for the compare "
                        "page (default: the two best evaluated runs)")  # fmt: skip
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        sys.exit("chromium not found: apt-get install -y chromium")
    store, experiment_id, runs = _store(args.root)
    runs = args.run or runs
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _start_server(store.uri, port)
    try:
        _wait_ready(base, server)
        pages = _pages(experiment_id, runs)
        args.out.mkdir(parents=True, exist_ok=True)
        for name, fragment in pages.items():
            if args.page and name not in args.page:
                continue
            path = args.out / f"{name}.png"
            _shoot(browser, f"{base}/#{fragment}", path, args.size)
            print(f"{path}  {base}/#{fragment}")
    finally:
        _stop(server)
    return 0


def _store(root: Path) -> tuple[object, str, list[str]]:
    """The project's store, the model experiment's id and its two best run ids."""
    import yaml

    from pipeline.runs.leaderboard import leaderboard
    from pipeline.runs.store import Store

    params = root / "params.yaml"
    cfg = yaml.safe_load(params.read_text(encoding="utf-8")) if params.exists() else None
    store = Store.open(cfg, root)
    experiment = store.client.get_experiment_by_name(store.experiment)
    rows = [r for r in leaderboard(store) if r["macro_f1"] is not None]
    if experiment is None or len(rows) < 2:
        sys.exit(f"{store.uri}: needs two evaluated model runs (make run, then another model)")
    return store, experiment.experiment_id, [rows[0]["run_id"], rows[1]["run_id"]]


def _pages(experiment_id: str, runs: list[str]) -> dict[str, str]:
    """Screenshot name -> the UI's route (after `#`)."""
    compare = urllib.parse.urlencode(
        {"runs": json.dumps(runs), "experiments": json.dumps([experiment_id])}
    )
    return {
        "runs-table": f"/experiments/{experiment_id}/runs",
        "run-page": f"/experiments/{experiment_id}/runs/{runs[0]}",
        "run-artifact": f"/experiments/{experiment_id}/runs/{runs[0]}/artifacts/confusion.png",
        "compare": f"/compare-runs?{compare}",
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(uri: str, port: int) -> subprocess.Popen[bytes]:
    mlflow = Path(sys.executable).with_name("mlflow")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [str(mlflow), "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]  # fmt: skip
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: _stop ends the workers too
    )  # fmt: skip


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    """Poll /health until it answers, the server exits or the deadline passes."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = server.stderr.read().decode() if server.stderr else ""
            sys.exit(f"mlflow server exited {server.returncode}: {err[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)  # polling a server that is starting, not ordering events
    sys.exit(f"mlflow server did not answer {base}/health in {WAIT_SECONDS:.0f} s")


def _shoot(browser: str, url: str, path: Path, size: str) -> None:
    """One headless Chromium screenshot, then shrunk to a 256-colour PNG; a shot that does not
    finish in SHOT_SECONDS is abandoned (Chromium's process group ended) and reported."""
    with tempfile.TemporaryDirectory() as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   f"--user-data-dir={profile}", f"--window-size={size}",
                   f"--virtual-time-budget={RENDER_MS}", f"--screenshot={path}", url]  # fmt: skip
        shot = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
        try:
            shot.wait(timeout=SHOT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(shot.pid, signal.SIGKILL)
            shot.wait()
    if not path.exists():
        print(f"{path}: no screenshot after {SHOT_SECONDS} s", file=sys.stderr)
        return
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256)
    small.save(path, optimize=True)


def _stop(server: subprocess.Popen[bytes]) -> None:
    """End the server's process group (its gunicorn/uvicorn workers included)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


if __name__ == "__main__":
    raise SystemExit(main())
