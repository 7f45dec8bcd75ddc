"""Read the sample back as plain objects: the ground-truth tests check against these, with
no dependence on the dedup stage's own readers."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq


def raw_objects(raw: Path) -> tuple[list[dict[str, Any]], dict[tuple[str, int], bytes]]:
    """Every parseable object in `raw`, and every JSON Lines line by (file, 1-based line)."""
    objs: list[dict[str, Any]] = []
    lines: dict[tuple[str, int], bytes] = {}
    for path in sorted(raw.iterdir()):
        if path.suffix == ".parquet":
            objs += pq.read_table(path).to_pylist()
        elif path.suffix == ".csv":
            objs += list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
        elif path.suffix == ".json":
            objs += json.loads(path.read_text(encoding="utf-8"))
        else:
            data = path.read_bytes()
            data = gzip.decompress(data) if path.suffix == ".gz" else data
            for n, line in enumerate(data.removeprefix(b"\xef\xbb\xbf").splitlines(), 1):
                lines[(path.name, n)] = line
                try:
                    obj = json.loads(line.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    continue
                if isinstance(obj, dict):
                    objs.append(obj)
    return objs, lines


def valid_by_id(raw: Path, truth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The sample's valid records that carry an id, by id (rejected rows left out)."""
    rejected = {r.get("id") for r in truth["rejected"]}
    objs, _ = raw_objects(raw)
    return {o["id"]: o for o in objs if o.get("id") and o["id"] not in rejected}
