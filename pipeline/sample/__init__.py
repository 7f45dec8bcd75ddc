"""The bundled sample: `python -m pipeline.sample` writes data/raw/ and its ground truth
(tests/data/sample_truth.json), byte-identical for the same seed and record count."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pipeline.sample.generate import FILES, generate
from pipeline.sample.write import (
    _malformed_jsonl,
    write_csv,
    write_json_array,
    write_jsonl,
    write_parquet,
)

NO_ID_RECORDS = 8  # records in the main file without an `id`: the reader names them file:line


def write_sample(out: Path, seed: int = 0, n_records: int = 3000) -> dict[str, Any]:
    """Write the sample files into `out` and return the ground truth."""
    sample = generate(seed=seed, n_records=n_records)
    rng = random.Random(seed + 1)  # serialisation choices, independent of the content
    out.mkdir(parents=True, exist_ok=True)
    truth = sample.truth
    planted_ids = {e["id"] for e in truth["exact_duplicates"] + truth["near_duplicates"]}
    planted_ids |= {e["duplicate_of"] for e in truth["exact_duplicates"] + truth["near_duplicates"]}
    planted_ids |= set(truth["pii"]["records"])
    main = sample.files["chat_2024h1.jsonl"]
    loose = [r for r in main if "session_id" not in r and r["id"] not in planted_ids]
    no_id = {r["id"] for r in rng.sample(loose, NO_ID_RECORDS)}
    for rec in main:
        if rec["id"] in no_id:
            rec["_no_id"] = True
    placed: list[dict[str, Any]] = []
    for name, records in sample.files.items():
        path = out / name
        extras = FILES[name][3]
        if name == "chat_2024h1.jsonl":
            placed += write_jsonl(path, records, rng, bad=_malformed_jsonl("m1"))
        elif name == "chat_2024h2.jsonl":
            placed += write_jsonl(path, records, rng, bad=_malformed_jsonl("m2")[:2], crlf=True)
        elif name == "annotators.jsonl":
            placed += write_jsonl(path, records, rng, bad=_malformed_jsonl("m3")[8:9], bom=True)
        elif name.endswith(".jsonl.gz"):
            placed += write_jsonl(path, records, rng, bad=_malformed_jsonl("m4")[5:7], gz=True)
        elif name.endswith(".csv"):
            placed += write_csv(path, records, extras)
        elif name.endswith(".json"):
            placed += write_json_array(path, records, rng)
        else:
            placed += write_parquet(path, records, extras)
    rejected = [p for p in placed if p["reason"] is not None]
    valid = sum(map(len, sample.files.values()))
    n_exact, n_near = len(truth["exact_duplicates"]), len(truth["near_duplicates"])
    labels: dict[str, int] = {}
    for records in sample.files.values():
        for rec in records:
            labels[rec["label"]] = labels.get(rec["label"], 0) + 1
    return {
        "generator": {"seed": seed, "records": n_records, "command": "python -m pipeline.sample"},
        "notes": (
            "JSON Lines positions are 1-based physical lines; CSV, JSON-array and Parquet "
            "positions are 1-based data rows (header excluded). Jaccard is over word 5-gram "
            "shingles of NFKC-lowercased, whitespace-split `prompt + ' ' + response`."
        ),
        "counts": {
            "input_rows": valid + len(rejected),
            "valid": valid,
            "rejected": len(rejected),
            "exact_duplicates": n_exact,
            "near_duplicates": n_near,
            "kept": valid - n_exact - n_near,
            "sessions": truth["sessions"],
            "labels": dict(sorted(labels.items())),
            "files": {name: len(recs) for name, recs in sorted(sample.files.items())},
        },
        "rejected": rejected,
        "records_without_id": [f"{p['file']}:{p['line']}" for p in placed if p["reason"] is None],
        "exact_duplicates": truth["exact_duplicates"],
        "near_duplicates": truth["near_duplicates"],
        "pii": truth["pii"],
    }


def write_truth(path: Path, truth: dict[str, Any]) -> None:
    """Write the ground truth as stable, sorted JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(truth, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
