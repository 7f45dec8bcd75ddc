"""Serialise the sample to files in several formats, with planted malformed rows, and record
where each malformed row landed (file, line or row, reason) for the ground truth."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.record import FIELD_NAMES, arrow_schema

# The sample's column order, part of the committed files' bytes (tests/test_sample.py), so
# it is spelled out here; tests/test_record_fields.py checks it covers every user field.
RECORD_KEYS = (
    "id",
    "prompt",
    "response",
    "label",
    "user_id",
    "session_id",
    "parent_id",
    "turn",
    "created_at",
    "quality",
    "origin",
    "tags",
    "source",
)
BOM = "\ufeff"
OVERSIZE_CHARS = 120_000


def _iso(ts: datetime, style: str = "Z") -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if style == "Z" else "+00:00")


def _where(path: Path, row: int, rid: str, reason: str, field: str) -> dict[str, Any]:
    return {"file": path.name, "row": row, "id": rid, "reason": reason, "field": field}


def _json_obj(rec: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    out = {k: rec[k] for k in rec if k not in ("created_at", "_no_id")}
    out["created_at"] = _iso(rec["created_at"])
    if rec.get("_no_id"):
        del out["id"]  # the reader must fall back to `<file name>:<line>`
    if out.get("quality") is None and rng.random() < 0.5:
        out.pop("quality", None)  # a missing key and an explicit null must both be accepted
    return out


def _malformed_jsonl(tag: str) -> list[tuple[bytes, dict[str, Any]]]:
    """Bad lines for a JSON Lines file: (raw bytes, what is wrong with them)."""
    ok = '"response": "fine", "label": "qa", "created_at": "2024-05-01T10:00:00Z"'
    rows = [
        (f'{{"id": "{tag}-01", "prompt": "This line is cut off', "invalid_json", None),
        (f'{{"id": "{tag}-02", "prompt": "trailing comma", {ok},}}', "invalid_json", None),
        (f'{{"id": "{tag}-03", "prompt": "caf\xe9 au lait", {ok}}}', "invalid_utf8", None),
        ('["a", "list", "not", "an", "object"]', "not_an_object", None),
        (f'{{"id": "{tag}-05", {ok}}}', "missing_prompt", "prompt"),
        (f'{{"id": "{tag}-06", "prompt": "", {ok}}}', "empty_prompt", "prompt"),
        (f'{{"id": "{tag}-07", "prompt": 12345, {ok}}}', "wrong_type", "prompt"),
        (
            f'{{"id": "{tag}-08", "prompt": "rate me", {ok}, "quality": "abc"}}',
            "wrong_type",
            "quality",
        ),
        (
            f'{{"id": "{tag}-09", "prompt": "when?", "created_at": "2024-13-45T99:00:00Z"}}',
            "bad_timestamp",
            "created_at",
        ),
        (
            f'{{"id": "{tag}-10", "prompt": "{"lorem ipsum " * (OVERSIZE_CHARS // 12)}"}}',
            "oversize",
            "prompt",
        ),
    ]
    out = []
    for n, (text, reason, field) in enumerate(rows, 1):
        rid = None if reason == "not_an_object" else f"{tag}-{n:02d}"
        # latin-1 keeps the lone \xe9 byte of the invalid-UTF-8 line; the rest is ASCII.
        raw = text.encode("latin-1") if reason == "invalid_utf8" else text.encode("utf-8")
        out.append((raw, {"id": rid, "reason": reason, "field": field}))
    return out


def write_jsonl(
    path: Path,
    records: list[dict[str, Any]],
    rng: random.Random,
    bad: list[tuple[bytes, dict[str, Any]]] = (),
    crlf: bool = False,
    bom: bool = False,
    gz: bool = False,
) -> list[dict[str, Any]]:
    """Write JSON Lines with `bad` lines spread through it; return where the bad lines are
    (and, with `reason` None, where the records without an id are)."""
    lines = [json.dumps(_json_obj(r, rng), ensure_ascii=False).encode("utf-8") for r in records]
    spots = sorted(rng.sample(range(1, len(lines)), len(bad)))
    placed = []
    for offset, (spot, (raw, info)) in enumerate(zip(spots, bad, strict=True)):
        lines.insert(spot + offset, raw)
        placed.append({"file": path.name, "line": spot + offset + 1, **info})
    bad_lines = {p["line"] for p in placed}
    good_lines = [n for n in range(1, len(lines) + 1) if n not in bad_lines]
    for rec, line in zip(records, good_lines, strict=True):
        if rec.get("_no_id"):
            placed.append({"file": path.name, "line": line, "reason": None, "id_fallback": True})
    eol = b"\r\n" if crlf else b"\n"
    data = (BOM.encode("utf-8") if bom else b"") + eol.join(lines) + eol
    if gz:
        buf = io.BytesIO()
        # mtime=0 and no file name in the header: the same bytes on every run.
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as fh:
            fh.write(data)
        data = buf.getvalue()
    path.write_bytes(data)
    return placed


def write_csv(path: Path, records: list[dict[str, Any]], extras: tuple[str, ...]) -> list[dict]:
    """CSV with record-field columns (tags as a JSON list) plus two bad rows."""
    columns = [*RECORD_KEYS, *extras]
    rows = []
    for rec in records:
        row = {k: rec.get(k) for k in columns}
        row["tags"] = json.dumps(rec.get("tags", []))
        row["created_at"] = _iso(rec["created_at"], style="offset")
        rows.append({k: "" if v is None else v for k, v in row.items()})
    bad = [
        ({**rows[0], "id": "csv-01", "prompt": ""}, "empty_prompt", "prompt"),
        (
            {**rows[1], "id": "csv-02", "prompt": "rate this", "quality": "abc"},
            "wrong_type",
            "quality",
        ),
    ]
    placed = []
    for row, reason, field in bad:
        at = len(rows) // 3 * (len(placed) + 1)
        rows.insert(at, row)
        placed.append(
            {"file": path.name, "row": at + 1, "id": row["id"], "reason": reason, "field": field}
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8"))
    return placed


def write_json_array(path: Path, records: list[dict[str, Any]], rng: random.Random) -> list[dict]:
    """A JSON array of objects, one of them without a prompt."""
    objs = [_json_obj(r, rng) for r in records]
    at = len(objs) // 2
    objs.insert(at, {"id": "json-01", "response": "an answer to nothing", "label": "writing"})
    path.write_bytes(json.dumps(objs, ensure_ascii=False, indent=1).encode("utf-8") + b"\n")
    return [
        {
            "file": path.name,
            "row": at + 1,
            "id": "json-01",
            "reason": "missing_prompt",
            "field": "prompt",
        }
    ]


def write_parquet(path: Path, records: list[dict[str, Any]], extras: tuple[str, ...]) -> list[dict]:
    """Typed Parquet (timestamps, list<string> tags, nullable numbers), one null prompt."""
    rows = [dict(r) for r in records]
    at = len(rows) // 4
    rows.insert(at, {**rows[0], "id": "parquet-01", "prompt": None})
    schema = arrow_schema()  # record fields typed as the store types them; extras are text
    columns = {}
    for key in (*RECORD_KEYS, *extras):
        kind = schema.field(key).type if key in FIELD_NAMES else pa.string()
        columns[key] = pa.array([r.get(key) for r in rows], type=kind)
    table = pa.table(columns)
    pq.write_table(table, path, compression="zstd", row_group_size=100)
    return [
        {
            "file": path.name,
            "row": at + 1,
            "id": "parquet-01",
            "reason": "missing_prompt",
            "field": "prompt",
        }
    ]
