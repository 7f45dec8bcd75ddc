"""The dedup stage streams: its peak memory grows with the record count, not the text.

Two inputs of long records, one four times the other, each deduplicated in a fresh process
that reports its peak RSS. Holding the records (as the stage once did) grows the peak by
at least the extra text, twice over; streaming grows it by the per-record numbers only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
WORDS_PER_RECORD = 1_400  # ~8.5 KB of text per record
PLANTED_EVERY = 50  # every 50th record is followed by a one-word edit of itself

CHILD = """
import json, resource, sys
from pathlib import Path
from pipeline.config import compose
from pipeline.stages.dedup import run

root = Path(sys.argv[1])
cfg = compose([f"tracking.uri=sqlite:///{root}/mlflow.db", "dedup.pii.enabled=false",
               "dedup.stream.duckdb_memory_limit=48MB",
               "dedup.semantic.enabled=false"])  # its vectors (n x 384 floats) are not streamed
cfg.data.path = "raw"
report = run(cfg, root)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_mb": peak_mb, "report": report}))
"""


def _write_dataset(root: Path, n: int) -> tuple[int, int]:
    """n distinct long records plus near-duplicate copies; returns (bytes, planted)."""
    rng = np.random.default_rng(n)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = np.array(["".join(rng.choice(letters, rng.integers(3, 9))) for _ in range(5_000)])
    path = root / "raw" / "records.jsonl"
    path.parent.mkdir(parents=True)
    planted = 0
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            words = vocab[rng.integers(0, len(vocab), WORDS_PER_RECORD)]
            fh.write(json.dumps({"id": f"r{i}", "prompt": " ".join(words)}) + "\n")
            if i % PLANTED_EVERY == 0:
                words[WORDS_PER_RECORD // 2] = "edited"
                fh.write(json.dumps({"id": f"r{i}-copy", "prompt": " ".join(words)}) + "\n")
                planted += 1
    return path.stat().st_size, planted


def _run_child(root: Path) -> dict:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root)],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_grows_with_records_not_text(tmp_path: Path) -> None:
    runs = {}
    for name, n in (("small", 6_000), ("large", 18_000)):
        root = tmp_path / name
        size, planted = _write_dataset(root, n)
        result = _run_child(root)
        report = result["report"]
        assert report["accounting"]["holds"], report["accounting"]
        assert report["near_duplicates"] == planted and report["exact_duplicates"] == 0
        assert report["kept"] == n
        runs[name] = (size, result["peak_mb"])
    (small_bytes, small_peak), (large_bytes, large_peak) = runs["small"], runs["large"]
    extra_text_mb = (large_bytes - small_bytes) / 2**20  # ~110 MB
    growth_mb = large_peak - small_peak
    print(f"text +{extra_text_mb:.0f} MB -> peak RSS {small_peak:.0f} -> {large_peak:.0f} MB")
    # Holding the texts would grow the peak by >= extra_text_mb (x2 with the Arrow copy).
    assert growth_mb < 0.5 * extra_text_mb, (runs, growth_mb, extra_text_mb)
