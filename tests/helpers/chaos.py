"""Helpers of the chaos suite (no tests here): a small project with planted users, the real
CLI and HTTP service in subprocesses, and the invariants checked after every scenario."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "PYTHONPATH": str(REPO),
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "TOKENIZERS_PARALLELISM": "false",
}
TIMEOUT = 180  # seconds any one step may take on a loaded 2-core machine
LABELS = ("coding", "math", "support", "writing", "translation", "summarization", "qa")


def token(n: int) -> str:
    """A word no other text holds, planted in user n's texts (lower case: the keyword
    index lowercases, and PII redaction leaves it alone)."""
    return f"quux{n:02d}zebu"


def user(n: int) -> str:
    return f"chaos-user-{n:02d}"


def write_planted(raw: Path, donor: Path, users: int, per_user: int) -> None:
    """chaos.jsonl and chaos.csv: `per_user` mislabelled records per planted user (so they
    become confident mistakes), each with the user's token, plus rejected rows of every
    kind; the last user has only rejected rows."""
    prompts = []
    for line in (donor / "chat_2024h1.jsonl").open(encoding="utf-8", errors="replace"):
        try:
            row = json.loads(line)
        except ValueError:  # the sample's planted malformed lines
            continue
        if isinstance(row, dict) and isinstance(row.get("prompt"), str) and row["prompt"]:
            prompts.append(row["prompt"])
    prompts = prompts[: users * per_user]
    lines, csv_rows = [], ["id,prompt,response,label,user_id"]
    for n in range(users):
        uid, tok = user(n), token(n)
        if n < users - 1:
            for i in range(per_user):
                prompt = prompts[n * per_user + i]
                lines.append(json.dumps({
                    "id": f"cz{n:02d}-{i}", "prompt": f"{prompt} {tok}",
                    "response": f"noted {tok}", "label": LABELS[(n + i) % len(LABELS)],
                    "user_id": uid, "quality": 5,
                }))  # fmt: skip
        lines.append(f'{{"id": "cz{n:02d}-bad", "user_id": "{uid}", "prompt": "cut {tok}')
        lines.append(json.dumps({"id": f"cz{n:02d}-empty", "user_id": uid, "prompt": "",
                                 "response": f"{tok} only here"}))  # fmt: skip
        csv_rows.append(f"cz{n:02d}-csv,{tok} in a row,too,many,{uid},cells")
    (raw / "chaos.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (raw / "chaos.csv").write_text("\n".join(csv_rows) + "\n", encoding="utf-8")


class Proc:
    """A CLI or server subprocess whose stderr lines can be awaited with a deadline."""

    def __init__(self, root: Path, args: list[str], pause: str | None = None) -> None:
        env = {**ENV, **({"PIPELINE_PAUSE_AT": pause} if pause else {})}
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "pipeline", *args], cwd=root, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        self.out: list[str] = []
        self._err_pump = threading.Thread(target=self._pump, args=(self.popen.stderr, True))
        self._out_pump = threading.Thread(target=self._pump, args=(self.popen.stdout, False))
        for pump in (self._err_pump, self._out_pump):
            pump.daemon = True
            pump.start()

    def _pump(self, stream, is_err: bool) -> None:
        for line in stream:
            (self.err if is_err else self.out).append(line)
            if is_err:
                self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """Block until a stderr line matches `pattern` (a deadline, never a sleep)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            ended = self.popen.poll() is not None and not self._err_pump.is_alive()
            if left <= 0 or (ended and self.lines.empty()):
                raise AssertionError(f"no line matching {pattern!r}; stderr:\n{''.join(self.err)}")
            try:
                line = self.lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if match := re.search(pattern, line):
                return match

    def resume(self) -> None:
        self.popen.stdin.write("\n")
        self.popen.stdin.flush()

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(TIMEOUT)

    def finish(self, code: int = 0) -> str:
        """Wait for the exit; assert its code; return stdout."""
        got = self.popen.wait(TIMEOUT)
        self._out_pump.join(TIMEOUT)
        self._err_pump.join(TIMEOUT)
        assert got == code, f"exit {got} != {code}; stderr:\n{''.join(self.err)}"
        return "".join(self.out)


def cli(root: Path, *args: str, code: int = 0) -> str:
    """Run `pipeline <args>` in `root` to the end; assert the exit code; return stdout."""
    return Proc(root, list(args)).finish(code)


@dataclass
class Service:
    """`pipeline serve` on a free loopback port."""

    root: Path
    proc: Proc = field(init=False)
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.proc = Proc(self.root, ["serve", "--port", "0"])
        port = self.proc.wait_for(r"Uvicorn running on http://127\.0\.0\.1:(\d+)").group(1)
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Stop it (SIGTERM: the lifespan flushes the query log); it must not have failed."""
        self.proc.popen.send_signal(signal.SIGTERM)
        self.proc.popen.wait(TIMEOUT)
        self.proc._err_pump.join(TIMEOUT)
        err = "".join(self.proc.err)
        assert "Traceback" not in err, err[-4000:]


def base_rows(store: Path) -> dict[tuple[str, int], tuple[str | None, str | None, str]]:
    """(file, line) -> (user id, user hash, raw or prompt text) of every stored input row."""
    con = duckdb.connect()
    con.execute("ATTACH ? AS s (READ_ONLY)", [str(store)])
    try:
        rows = con.execute(
            """SELECT file, line, user_id, NULL, prompt FROM s.records
               UNION ALL SELECT file, line, user_id, NULL, prompt FROM s.duplicates
               UNION ALL SELECT file, line, NULL, user_hash, raw FROM s.rejected"""
        ).fetchall()
    finally:
        con.close()
    return {(f, ln): (u, h, t) for f, ln, u, h, t in rows}


def holds(data: bytes, needle: str) -> bool:
    return needle.encode() in data


def texts_of(path: Path) -> bytes:
    """A file's bytes, plus its decoded text where the bytes are compressed (Parquet,
    DuckDB, gzip): a token inside a compressed page would not show in the raw bytes."""
    data = path.read_bytes()
    if path.suffix == ".parquet":
        data += json.dumps(pq.read_table(path).to_pylist(), default=str).encode()
    elif path.suffix == ".duckdb":
        con = duckdb.connect()
        con.execute("ATTACH ? AS s (READ_ONLY)", [str(path)])
        try:
            tables = [
                t
                for (t,) in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = 's'"
                ).fetchall()
            ]
            for table in tables:
                data += str(con.execute(f'SELECT * FROM s."{table}"').fetchall()).encode()
        finally:
            con.close()
    elif path.suffix == ".gz":
        data += gzip.decompress(data)
    return data


def searched_files(root: Path) -> list[Path]:
    """Every file erasure must leave clean: data/ (but data/raw), reports/, mlruns/,
    mlflow.db."""
    out = [p for p in (root / "data").rglob("*") if p.is_file()
           and "raw" not in p.relative_to(root / "data").parts[:1]]  # fmt: skip
    for sub in ("reports", "mlruns"):
        out += [p for p in (root / sub).rglob("*") if p.is_file()]
    return [*out, root / "mlflow.db"]


def eventually(condition, timeout: float = 30.0) -> bool:
    """Poll `condition` until it holds or the deadline passes (what another process does
    on its own clock, e.g. a server swapping to a replaced store)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() >= deadline:
            return False
        pause.wait(0.05)
    return True


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
