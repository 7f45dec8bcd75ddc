"""Small file helpers of the dedup stage: content hashes, the erasure list, Parquet output."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import UserInputError

_SHA256 = re.compile(r"[0-9a-f]{64}")


def data_hash(files: Sequence[tuple[Path, str]]) -> str:
    """sha256 over the sorted (relative name, sha256 of bytes) of the input files."""
    outer = hashlib.sha256()
    for path, rel in sorted(files, key=lambda item: item[1]):
        inner = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                inner.update(chunk)
        outer.update(f"{rel}\0{inner.hexdigest()}\n".encode())
    return outer.hexdigest()


def user_hash(user_id: str) -> str:
    """The form of a user id kept in data/erasures.txt and the erasure log: sha256 hex."""
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()


def read_erasures(path: Path) -> frozenset[str]:
    """sha256 hex digests of erased user ids; an absent file erases nobody."""
    if not path.exists():
        return frozenset()
    digests = set()
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            text = line.strip().lower()
            if not text or text.startswith("#"):
                continue
            if not _SHA256.fullmatch(text):
                raise UserInputError(f"{path}:{number}: expected a sha256 hex digest of a user_id")
            digests.add(text)
    return frozenset(digests)


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write a table with fixed settings, so the same table gives the same bytes."""
    pq.write_table(
        table, path, compression="zstd", compression_level=3, row_group_size=65_536,
        write_statistics=True, use_dictionary=True,
    )  # fmt: skip


def read_feedback_scores(path: Path) -> dict[str, float]:
    """Mean feedback score in [0, 1] per record id from the snapshot `pipeline stats feedback`
    publishes; an absent file means no feedback."""
    if not path.exists():
        return {}
    try:
        table = pq.read_table(path, columns=["id", "feedback_score"])
    except (OSError, KeyError, ValueError) as exc:
        raise UserInputError(f"{path}: not a feedback snapshot ({exc})".splitlines()[0]) from exc
    ids = table.column("id").to_pylist()
    scores = table.column("feedback_score").to_pylist()
    return {
        i: float(s) for i, s in zip(ids, scores, strict=True) if i is not None and s is not None
    }
