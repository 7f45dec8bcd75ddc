"""Hostile input against the real server (`pipeline serve`, uvicorn on loopback): oversize
bodies, deep nesting, huge and many filters, lone surrogates, NaN and Infinity, keys in the
URL, wrong content types. Each gets a 4xx, never a 5xx; the service DB grows no more than
the caps allow; no key appears in the server's log."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from helpers.serve import build_index, build_store, start_serve, write_params
from helpers.wait import wait_until

from pipeline.cli import main
from pipeline.service import limits
from pipeline.service.keys import create_key
from pipeline.service.settings import ServeSettings

MAX_BODY = ServeSettings().max_body_bytes  # the server runs with the default config
JSON = {"Content-Type": "application/json"}


@dataclass
class Server:
    """A `pipeline serve` subprocess and what the tests need to talk to it."""

    proc: subprocess.Popen
    port: int
    log: Path
    service_db: Path
    keys: dict[str, str]
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    statuses: list[int] = field(default_factory=list)  # every status the suite saw

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def memory_kib(self) -> dict[str, int]:
        """VmRSS (now) and VmHWM (peak) of the server process, in KiB."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return {k: int(re.search(rf"{k}:\s+(\d+) kB", text).group(1)) for k in ("VmRSS", "VmHWM")}

    def request(
        self, method: str, path: str, key: str | None = "reader", **kwargs
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {self.keys[key]}"
        response = self.client.request(method, self.url + path, headers=headers, **kwargs)
        self.statuses.append(response.status_code)
        return response


def _start(root: Path) -> Server:
    config = build_store(root)
    build_index(config)
    db = config.paths.service_db
    keys = {
        role: create_key(db, role, f"hostile-{role}")[0] for role in ("reader", "writer", "admin")
    }
    params = write_params(config, root)
    proc, url, log = start_serve(params, root)
    server = Server(proc, int(url.rsplit(":", 1)[1]), log, db, keys)
    assert httpx.get(server.url + "/health", timeout=10).json()["status"] == "ok"
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    running = _start(tmp_path_factory.mktemp("hostile"))
    try:
        yield running
    finally:
        running.client.close()
        running.proc.send_signal(signal.SIGINT)  # a clean shutdown flushes the query log
        try:
            running.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            running.proc.kill()
            running.proc.wait()
    # Whatever the suite sent, the server answered it: no 5xx, no traceback, no key.
    assert running.statuses and all(400 <= s < 500 or s < 300 for s in running.statuses)
    text = running.log.read_text()
    assert "Traceback" not in text and "Exception in ASGI" not in text, text[-3000:]
    for key in running.keys.values():
        assert key not in text
        assert key.encode() not in running.service_db.read_bytes()


# --- raw HTTP: bodies the client keeps sending while the server may already have answered ---


@dataclass
class Exchange:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client got out before the answer
    seconds: float  # from the end of the headers to the status line


def _exchange(server: Server, head: str, body: Iterator[bytes]) -> Exchange:
    """Send `head`, then `body` chunk by chunk until the server answers or closes."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(head.encode("latin-1"))
    started = time.monotonic()
    sock.setblocking(False)
    received, sent, pending = b"", 0, b""
    chunks = iter(body)
    try:
        while b"\r\n\r\n" not in received:
            assert time.monotonic() - started < 120, "no answer"
            if not pending:
                pending = next(chunks, b"")
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], 1.0)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                received += data
            elif writable:
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    pending = b""
                    continue  # the server closed: read what it said
                sent, pending = sent + n, pending[n:]
        seconds = time.monotonic() - started
        sock.setblocking(True)
        sock.settimeout(10)
        head_part, _, rest = received.partition(b"\r\n\r\n")
        lines = head_part.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        headers = {k.lower(): v for k, v in headers.items()}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                break
            rest += data
    finally:
        sock.close()
    status = int(lines[0].split()[1])
    server.statuses.append(status)
    return Exchange(status, headers, rest, sent, seconds)


def _fixed(total: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    block = b"x" * chunk
    for start in range(0, total, chunk):
        yield block[: min(chunk, total - start)]


def _chunked(total: int, chunk: int = 1 << 16) -> Iterator[bytes]:
    block = b"y" * chunk
    for start in range(0, total, chunk):
        piece = block[: min(chunk, total - start)]
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def _head(path: str, extra: str, key: str | None = None) -> str:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{auth}{extra}\r\n"
    )


@pytest.mark.slow
def test_large_bodies_without_a_key_are_answered_before_they_are_read(server):
    """The issue's attack: two 300 MB bodies without a key (4.5 s and +430 MB RSS before)."""
    size = 300 * 1024 * 1024
    before = server.memory_kib()
    answers = [
        _exchange(server, _head("/search", f"Content-Length: {size}\r\n"), _fixed(size)),
        _exchange(server, _head("/search", "Transfer-Encoding: chunked\r\n"), _chunked(size)),
    ]
    after = server.memory_kib()
    for answer in answers:
        assert answer.status in (401, 413), answer
        assert answer.sent < size // 10, "the server read the body before answering"
        assert answer.headers.get("connection") == "close"
    assert answers[0].status == 413 and b"serve.max_body_bytes" in answers[0].body
    assert answers[1].status == 401  # no length to judge: the missing key decides
    growth_mib = (after["VmHWM"] - before["VmHWM"]) / 1024
    print(
        f"\n300 MB bodies without a key: answered after {answers[0].seconds * 1000:.1f} ms "
        f"(Content-Length) and {answers[1].seconds * 1000:.1f} ms (chunked), "
        f"{answers[0].sent + answers[1].sent} body bytes sent in all; server RSS "
        f"{before['VmRSS'] / 1024:.1f} -> {after['VmRSS'] / 1024:.1f} MiB, "
        f"peak +{growth_mib:.1f} MiB"
    )
    assert growth_mib < 50


def test_bodies_over_the_cap_get_413_with_a_key(server):
    reader = server.keys["reader"]
    declared = _exchange(
        server,
        _head("/search", f"Content-Length: {MAX_BODY + 1}\r\n", reader),
        _fixed(MAX_BODY + 1),
    )
    assert declared.status == 413 and declared.headers.get("connection") == "close"
    assert f"limit of {MAX_BODY} bytes" in json.loads(declared.body)["detail"]
    # Chunked: counted as it arrives, refused once past the cap, long before the end (what
    # the client got out includes what the kernels' socket buffers took).
    streamed = _exchange(
        server, _head("/search", "Transfer-Encoding: chunked\r\n", reader), _chunked(300 * MAX_BODY)
    )
    assert streamed.status == 413 and streamed.sent < 30 * MAX_BODY
    assert streamed.headers.get("connection") == "close"
    # httpx sends a generator body chunked, a bytes body with its length.
    for content in (b"{" * (MAX_BODY + 1), iter([b" " * MAX_BODY, b"{}"])):
        assert server.request("POST", "/search", content=content).status_code == 413
    # At the cap exactly, the body is read and judged on its content.
    padded = json.dumps({"text": "refund", "mode": "keyword"}).ljust(MAX_BODY).encode()
    response = server.request("POST", "/search", content=padded, headers=JSON)
    assert response.status_code == 200, response.text


def test_deep_nesting_is_a_4xx(server):
    for depth in (50, 900, 30_000):
        nested = "[" * depth + "]" * depth
        for body in (
            f'{{"text": "x", "filters": {nested}}}',
            f'{{"text": {nested}}}',
            f'{{"text": "x", "extra": {nested}}}',
            "{" + '"a": {' * depth + "}" * depth + "}",
        ):
            response = server.request("POST", "/search", content=body, headers=JSON)
            assert 400 <= response.status_code < 500, (depth, response.text[:300])
    unclosed = server.request("POST", "/feedback", key="writer", content="[" * 20_000, headers=JSON)
    assert unclosed.status_code == 400  # the parser gives up at its recursion limit


def test_string_caps_on_every_request_model(server):
    big = "v" * 10_000
    many = ["label=a"] * (limits.FILTERS_MAX + 1)
    long_id = "r" * (limits.RECORD_ID_MAX + 1)
    cases = [
        ("POST", "/search", "reader", {"text": "x" * (limits.QUERY_TEXT_MAX + 1)}),
        ("POST", "/search", "reader", {"text": "x", "filters": ["label=" + big]}),
        ("POST", "/search", "reader", {"text": "x", "filters": many}),
        ("POST", "/feedback", "writer", {"record_id": long_id, "thumb": "up"}),
        ("POST", "/feedback", "writer", {"record_id": "a1", "thumb": "up", "comment": big}),
        ("POST", "/keys", "admin", {"role": "reader", "name": big}),
        ("POST", "/keys", "admin", {"role": "reader", "scope": {"user_id": [big]}}),
        ("POST", "/keys", "admin", {"role": "reader", "scope": {"source": ["s"] * 101}}),
        ("POST", "/erase", "admin", {"user_id": "u" * (limits.USER_ID_MAX + 1)}),
    ]  # fmt: skip
    for method, path, key, body in cases:
        response = server.request(method, path, key=key, json=body)
        assert response.status_code == 422, (path, response.text[:300])
        assert big not in response.text  # the reply names the field, never echoes the value
    assert server.request("GET", f"/records/{long_id}").status_code == 422
    assert server.request("DELETE", "/keys/" + "k" * 65, key="admin").status_code == 422
    # Just under every cap is fine.
    at_caps = {
        "text": "refund " + "q" * (limits.QUERY_TEXT_MAX - 7),
        "mode": "keyword",
        "filters": ["label=" + "l" * (limits.FILTER_MAX - 6)] * limits.FILTERS_MAX,
    }
    assert server.request("POST", "/search", json=at_caps).status_code == 200


SURROGATE = '"a\\ud800b"'  # JSON for a string holding a lone surrogate
# Every field of every request model, as (path, key, body with {v} where the value goes).
SLOTS = [
    ("/search", "reader", '{{"text": {v}}}'),
    ("/search", "reader", '{{"text": "x", "k": {v}}}'),
    ("/search", "reader", '{{"text": "x", "filters": [{v}]}}'),
    ("/search", "reader", '{{"text": "x", "extra": {v}}}'),
    ("/feedback", "writer", '{{"record_id": {v}, "thumb": "up"}}'),
    ("/feedback", "writer", '{{"record_id": "a1", "score": {v}}}'),
    ("/feedback", "writer", '{{"record_id": "a1", "thumb": "up", "comment": {v}}}'),
    ("/keys", "admin", '{{"role": {v}}}'),
    ("/keys", "admin", '{{"role": "reader", "name": {v}}}'),
    ("/keys", "admin", '{{"role": "reader", "scope": {{"source": [{v}]}}}}'),
    ("/erase", "admin", '{{"user_id": {v}}}'),
]


def test_surrogates_nan_and_infinity_are_a_422_never_a_500(server):
    for value in (SURROGATE, "NaN", "Infinity", "-Infinity", "1e999"):
        for path, key, template in SLOTS:
            body = template.format(v=value)
            response = server.request("POST", path, key=key, content=body, headers=JSON)
            assert response.status_code == 422, (body, response.text)
    # The messages say what is wrong.
    text = server.request("POST", "/search", content=f'{{"text": {SURROGATE}}}', headers=JSON)
    assert "not valid Unicode" in text.json()["detail"][0]["msg"]
    score = '{"record_id": "a1", "score": NaN}'
    nan = server.request("POST", "/feedback", key="writer", content=score, headers=JSON)
    assert "finite number" in nan.json()["detail"][0]["msg"]
    finite = server.request(
        "POST", "/feedback", key="writer", json={"record_id": "a1", "score": 1e308}
    )
    assert finite.status_code == 422 and "less than or equal to 5" in finite.text
    assert server.request("GET", "/usage?top=NaN", key="admin").status_code == 422
    # Invalid UTF-8 on the wire, and a surrogate in the path.
    raw = server.request("POST", "/search", content=b'{"text": "\xff\xfe"}', headers=JSON)
    assert 400 <= raw.status_code < 500
    assert server.request("GET", "/records/%ED%A0%80").status_code == 404


def test_odd_record_ids_and_filter_values_are_a_4xx(server):
    # "²" and "٣" pass str.isdigit; "--1" passed a strip of "-": each once made int() fail.
    for record_id in ("%C2%B2", "%D9%A3", "--1", "-", "%00", "9" * 400):
        assert server.request("GET", f"/records/{record_id}").status_code == 404, record_id
    for value in ("quality>nan", "quality<inf", "created_at>0001-01-01T00:00:00+14:00"):
        body = {"text": "x", "mode": "keyword", "filters": [value]}
        response = server.request("POST", "/search", json=body)
        assert response.status_code == 400 and value in response.json()["detail"]


def test_wrong_content_types_are_a_4xx(server):
    body = json.dumps({"text": "refund", "mode": "keyword"})
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        None,
    ):
        headers = {"Content-Type": content_type} if content_type else {}
        response = server.request("POST", "/search", content=body.encode(), headers=headers)
        assert 400 <= response.status_code < 500, (content_type, response.text)


def test_keys_in_the_url_are_refused_and_never_logged(server):
    key = server.keys["reader"]
    key_id = key.split("_")[1]
    for path in (
        f"/whoami?api_key={key}",
        f"/stats?key={key}",
        f"/usage?top=5&token={key}",
        f"/records/a1?anything={key}",
        f"/health?api_key={key}",
        f"/search?Authorization=Bearer%20{key}",
    ):
        response = server.request("GET", path, key=None)
        assert response.status_code == 400, (path, response.text)
        assert "never in the URL" in response.json()["detail"] and key not in response.text
    # A key in the path is a record id like any other (404), and masked in the log too.
    assert server.request("GET", f"/records/{key}").status_code == 404
    redacted = f"pk_{key_id}_[redacted]"
    wait_until(lambda: redacted in server.log.read_text(), "the request in the access log")
    text = server.log.read_text()
    assert key not in text and key.split("_", 2)[2] not in text
    assert "/whoami?[query redacted]" in text


def _queries(server: Server) -> int:
    return server.request("GET", "/usage", key="admin").json()["queries"]


def test_the_query_log_grows_only_as_the_caps_allow(server):
    """Requests with filters of any size add at most the capped row to service.duckdb."""

    def size() -> int:
        assert server.request("GET", "/usage", key="admin").status_code == 200  # flushes
        db = server.service_db
        wal = db.with_name(db.name + ".wal")
        return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def noise(n: int) -> str:  # incompressible text, so storage cannot hide a big value
        return base64.b64encode(os.urandom(n)).decode()[:n]

    start, queries = size(), _queries(server)
    hostile, accepted = 12, 12
    for _ in range(hostile):  # each body just under the byte cap, almost all of it filters
        filters = ["label=" + noise(MAX_BODY // 24) for _ in range(limits.FILTERS_MAX)]
        assert (
            server.request("POST", "/search", json={"text": "x", "filters": filters}).status_code
            == 422
        )
    for _ in range(accepted):  # each at the caps: the most a request may log
        body = {
            "text": noise(limits.QUERY_TEXT_MAX),
            "mode": "keyword",
            "filters": ["label=" + noise(limits.FILTER_MAX - 6)] * limits.FILTERS_MAX,
        }
        assert server.request("POST", "/search", json=body).status_code == 200
    grown = size() - start
    assert _queries(server) == queries + accepted  # the refused ones never reach the log
    row_max = 4 * (limits.QUERY_TEXT_MAX + limits.FILTERS_MAX * limits.FILTER_MAX) + 512
    bound = (hostile + accepted) * row_max + 2 * 1024 * 1024  # DuckDB allocates 256 KiB blocks
    print(f"\nservice.duckdb grew {grown} bytes for {hostile + accepted} requests (bound {bound})")
    assert grown <= bound


def test_a_bad_body_cap_is_a_config_error(tmp_path, capsys):
    params = write_params(build_store(tmp_path), tmp_path)
    params.write_text(params.read_text().replace("port: 0", "port: 0\n  max_body_bytes: 1MB"))
    assert main(["serve", "--params", str(params)]) == 2
    assert "serve.max_body_bytes '1MB'" in capsys.readouterr().err
