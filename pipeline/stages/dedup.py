"""The dedup stage: read, validate, erase, redact PII, normalise, exact, near, publish.

`run(cfg, root)` is the algorithm (`pipeline dedup` calls it). It streams: rows are read,
validated, erased, redacted and hashed a batch at a time, and each batch goes to a scratch
DuckDB file (`pipeline.store.staging`). What stays in memory is a few fixed-size numbers
per record (exact-key hash, keep-policy keys, rid; LSH band keys go to a memory-mapped
file), never the texts, so an input larger than memory works. Duplicate decisions are made
on those numbers, candidate texts are fetched back for verification, and the store and
records.parquet are built from the scratch file by SQL. Everything is written under a
temporary directory and published by rename, holding the writer lock over the published
data for the whole run (pipeline/service/writer.py): an erasure waits for the run and then
applies to what it published, so the run cannot bring an erased user back.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from omegaconf import DictConfig, OmegaConf

from pipeline.dedup import tables
from pipeline.dedup.collect import Collector
from pipeline.dedup.exact import exact_pairs, key_hashes
from pipeline.dedup.normalize import normalize
from pipeline.dedup.policy import check_policy, policy_columns, ranks
from pipeline.dedup.report import accounting, by_reason, log_mlflow
from pipeline.dedup.tables import Rejection
from pipeline.dedup.transforms import get_transform
from pipeline.dedup.userid import UserIdReader
from pipeline.dedup.validate import FieldMap, ValidateSettings
from pipeline.errors import UserInputError
from pipeline.io.atomic import atomic_dir, write_json
from pipeline.io.files import data_hash, read_erasures, read_feedback_scores, user_hash
from pipeline.io.pause import point
from pipeline.io.readers import ReadStats, read_dataset, scan_dataset
from pipeline.record import Record
from pipeline.tracking import TrackingSettings, git_commit, pipeline_run

_TEXT_FIELDS = ("prompt", "response", "label", "user_id", "session_id", "parent_id", "source")
# A batch is also flushed at this many characters of prompt + response, so long texts
# do not make a batch of `batch_records` records large.
BATCH_CHARS = 16_000_000
_MEMORY = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


@dataclass(frozen=True)
class DedupSettings:
    """The slices of the config the stage reads."""

    data_path: str
    fields: FieldMap
    transform: str | None
    validate: ValidateSettings
    exact_fields: tuple[str, ...]
    keep_policy: tuple[str, ...]
    dedup_dir: str
    store_name: str
    records_name: str
    erasures: str
    feedback: str
    fill_quality: bool
    reports: str
    batch_records: int
    memory_limit: str

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> DedupSettings:
        paths = cfg.paths
        for key in ("store", "records"):
            if Path(paths[key]).parent != Path(paths.dedup_dir):
                raise UserInputError(f"paths.{key}: must be inside paths.dedup_dir")
        exact = tuple(cfg.dedup.exact.fields)
        bad = [f for f in exact if f not in _TEXT_FIELDS]
        if bad or not exact:
            raise UserInputError(f"dedup.exact.fields: {bad or exact} not in {_TEXT_FIELDS}")
        return cls(
            data_path=str(cfg.data.path),
            fields=FieldMap.from_cfg(cfg.data),
            transform=cfg.data.get("transform"),
            validate=ValidateSettings.from_cfg(cfg.dedup.validate),
            exact_fields=exact,
            keep_policy=check_policy(list(cfg.dedup.keep_policy)),
            dedup_dir=str(paths.dedup_dir),
            store_name=Path(paths.store).name,
            records_name=Path(paths.records).name,
            erasures=str(paths.erasures),
            feedback=str(paths.feedback),
            fill_quality=bool(cfg.dedup.feedback.fill_quality),
            reports=str(paths.reports),
            batch_records=_positive(cfg.dedup.stream.batch_records, "dedup.stream.batch_records"),
            memory_limit=_memory(str(cfg.dedup.stream.duckdb_memory_limit)),
        )


def _positive(value: Any, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserInputError(f"{key}={value!r}: must be a positive integer")
    return value


def _memory(value: str) -> str:
    if not _MEMORY.fullmatch(value.strip()):
        raise UserInputError(
            f"dedup.stream.duckdb_memory_limit={value!r}: expected a size such as 512MB or 2GB"
        )
    return value.strip()


class Timer:
    """Seconds per named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.start = time.perf_counter()

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        begin = time.perf_counter()
        yield
        self.seconds[step] = round(time.perf_counter() - begin, 3)

    def add(self, step: str, seconds: float) -> None:
        self.seconds[step] = round(self.seconds.get(step, 0.0) + seconds, 3)

    def total(self) -> dict[str, float]:
        return {**self.seconds, "total": round(time.perf_counter() - self.start, 3)}


def _fill_quality(records: Sequence[Record], feedback: dict[str, float]) -> int:
    """Give unscored records the quality their feedback implies (1 + 4 x mean score in [0, 1]),
    so the `quality` filter and keep policy see it; returns how many were filled."""
    filled = 0
    for record in records:
        score = feedback.get(record.id)
        if record.quality is None and score is not None:
            record.quality = round(1.0 + 4.0 * score, 6)
            filled += 1
    return filled


def _progress(items: Any, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=" rows", file=sys.stderr, disable=not sys.stderr.isatty())


def run(cfg: DictConfig, root: Path = Path(".")) -> dict[str, Any]:
    """Deduplicate `cfg.data` into the store and records.parquet under `root`; return the report."""
    from pipeline.store.staging import Staging

    root = Path(root)
    s = DedupSettings.from_cfg(cfg)
    transform = get_transform(s.transform)
    near = _near_settings(cfg.dedup.near)
    pii_settings = _pii_settings(cfg.dedup.pii)
    params = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "dedup")}
    params_json = json.dumps(params, sort_keys=True)
    dedup_dir = root / s.dedup_dir
    from pipeline.service.settings import ServicePaths
    from pipeline.service.writer import writer

    paths = ServicePaths.from_cfg(cfg.paths, cfg.get("tracking")).under(root)
    # Taken before reading anything, and held until the report is written; a killed
    # run's temporaries are removed and unfinished erasures completed first.
    with writer(paths, "pipeline dedup"):
        point("dedup:locked")
        timer = Timer()
        stats = ReadStats()
        scan = scan_dataset(root / s.data_path)
        files = scan.files
        with timer("hash"):
            digest = data_hash(files)
        erasures = read_erasures(root / s.erasures)
        feedback = read_feedback_scores(root / s.feedback)
        with atomic_dir(dedup_dir) as tmp:
            work = tmp / ".work"
            staging = Staging(work, s.memory_limit)
            try:
                stream = _Stream(s, near, pii_settings, feedback, erasures, staging, timer)
                rows = _progress(read_dataset(files, s.validate.max_line_bytes, stats), "read")
                collector = Collector(s.fields, s.validate, transform, stream.first_id)
                stream.consume(rows, collector, UserIdReader(s.fields))
                decisions, n_exact, n_near = _decide(stream, near, work, timer)
                kept = stream.n - n_exact - n_near
                meta = {
                    "data_hash": digest,
                    "params": params_json,
                    "counts": json.dumps(
                        {"input_records": stream.input_records, "kept": kept,
                         "duplicates": n_exact + n_near,
                         "rejected": sum(stream.rejected.values())}, sort_keys=True),
                }  # fmt: skip
                with timer("write"):
                    staging.write_store(tmp / s.store_name, decisions, meta)
                    rows_per_group = _rows_per_group(stream.chars, stream.n)
                    staging.write_records_parquet(tmp / s.records_name, rows_per_group)
            finally:
                staging.close()
                shutil.rmtree(work, ignore_errors=True)
            point("dedup:written")
        point("dedup:published")
        report: dict[str, Any] = {
            "dataset": s.fields.default_source,
            "data_hash": digest,
            "files": len(stats.files),
            "skipped_files": scan.skipped,  # files under data.path not read, with why
            "input_lines": stats.lines,
            "blank_lines": stats.blank,
            "input_records": stream.input_records,
            "rejected": by_reason(stream.rejected),
            "exact_duplicates": n_exact,
            "near_duplicates": n_near,
            "erased": stream.erased,
            "feedback": {
                "records_rated": len(feedback),
                "quality_from_feedback": stream.from_feedback,
            },
            "kept": kept,
            "preferences": stream.preferences,
            "pii": {"total": sum(stream.pii.values()), "by_type": dict(sorted(stream.pii.items()))},
            "seconds": timer.total(),
        }
        report["accounting"] = accounting(report)
        write_json(root / s.reports / "dedup.json", report)
    commit = git_commit(root)
    tags = {"git_commit": commit, "data_hash": digest, "stage": "dedup",
            "pipeline_run": pipeline_run(commit, digest, params)}  # fmt: skip
    log_mlflow(report, params, tags, TrackingSettings.from_cfg(cfg.tracking), root)
    return report


@dataclass
class _Stream:
    """Read -> validate -> erase -> feedback -> PII -> hashes and band keys -> staging, a
    batch at a time. Holds per record only its key hash, policy keys and (on disk) band keys."""

    s: DedupSettings
    near: Any  # NearDupSettings | None
    pii_settings: Any  # PiiSettings | None
    feedback: dict[str, float]
    erasures: frozenset[str]
    staging: Any  # Staging
    timer: Timer
    n: int = 0
    input_records: int = 0
    erased: int = 0
    from_feedback: int = 0
    preferences: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    pii: Counter[str] = field(default_factory=Counter)  # redactions by type
    hashes: list[np.ndarray] = field(default_factory=list)
    policy: list[list[np.ndarray]] = field(default_factory=list)
    batch: list[Record] = field(default_factory=list)
    batch_chars: int = 0
    chars: int = 0  # prompt + response characters staged
    rejections: list[Rejection] = field(default_factory=list)
    side_chars: int = 0  # raw characters of the buffered rejections
    prefs: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    erased_ids: dict[int, str] = field(default_factory=dict)
    bands: Any = None  # open file of band keys, (n, bands) uint64 row-major

    def consume(self, rows: Any, collector: Collector, user_of: Any) -> None:
        """Run every row through the erasure list and the collector; stage what comes out."""
        if self.near is not None:
            self.bands = (self.staging.directory / "bands.u64").open("wb")
        erased_rows = 0
        try:
            begin = time.perf_counter()
            for row in rows:
                digest = _user_digest(user_of(row))
                if digest is not None and digest in self.erasures:
                    # Before validation: an erased user's row is never stored, valid or not.
                    erased_rows += 1
                    continue
                for item in collector.feed(row):
                    if isinstance(item, Record):
                        self._record(item)
                    elif isinstance(item, Rejection):
                        self._reject(replace(item, user_hash=digest))
                    else:
                        self.prefs.append(item)
                        self.preferences += 1
                        if len(self.prefs) >= self.s.batch_records:
                            self._flush_side()
            self._flush()
            self._flush_side()
            self.timer.add("read", time.perf_counter() - begin - self._inner())
        finally:
            if self.bands is not None:
                self.bands.close()
        self.erased += erased_rows
        self.input_records = collector.input_records + erased_rows

    def _inner(self) -> float:
        return sum(self.timer.seconds.get(k, 0.0) for k in ("pii", "minhash", "stage"))

    def _record(self, record: Record) -> None:
        # A transform (hh_rlhf) may give its turn records a user id its raw row did not show.
        user = record.user_id
        if user is not None and self.erasures and user_hash(user) in self.erasures:
            self.erased += 1
            self.erased_ids.setdefault(record.rid, record.id)
            return
        if self.s.fill_quality:
            self.from_feedback += _fill_quality([record], self.feedback)
        self.batch.append(record)
        chars = len(record.prompt) + len(record.response or "")
        self.batch_chars += chars
        self.chars += chars
        if len(self.batch) >= self.s.batch_records or self.batch_chars >= BATCH_CHARS:
            self._flush()

    def _reject(self, rejection: Rejection) -> None:
        self.rejected[rejection.reason] += 1
        self.rejections.append(rejection)
        self.side_chars += len(rejection.raw)  # up to 100k characters each
        if len(self.rejections) >= self.s.batch_records or self.side_chars >= BATCH_CHARS:
            self._flush_side()

    def first_id(self, rid: int) -> str | None:
        """The first id with this rid, for the collector's rid-collision message."""
        pending = next((r.id for r in self.batch if r.rid == rid), None)
        return pending or self.erased_ids.get(rid) or self.staging.first_id(rid)

    def _flush(self) -> None:
        batch, self.batch, self.batch_chars = self.batch, [], 0
        if not batch:
            return
        begin = time.perf_counter()
        pii_rows = _redact_records(self.pii_settings, batch)
        for _, _, kind, count in pii_rows:
            self.pii[kind] += count
        self.timer.add("pii", time.perf_counter() - begin)
        begin = time.perf_counter()
        exact_fields = self.s.exact_fields
        self.hashes.append(key_hashes(
            ["\x1f".join(normalize(getattr(r, f)) for f in exact_fields) for r in batch]
        ))  # fmt: skip
        self.policy.append(policy_columns(batch, self.s.keep_policy, self.feedback))
        if self.near is not None:
            from pipeline.dedup.minhash import band_keys_of

            texts = [_near_text(r, self.near.fields) for r in batch]
            self.bands.write(np.ascontiguousarray(band_keys_of(texts, self.near)).tobytes())
        self.timer.add("minhash", time.perf_counter() - begin)
        begin = time.perf_counter()
        from pipeline.store.staging import STAGED_SCHEMA

        columns = tables.record_columns(batch)
        columns["idx"] = list(range(self.n, self.n + len(batch)))
        self.staging.append("staged", pa.table(columns, schema=STAGED_SCHEMA))
        self.staging.append("pii_redactions", tables.pii_table(pii_rows))
        self.n += len(batch)
        self.timer.add("stage", time.perf_counter() - begin)

    def _flush_side(self) -> None:
        """Stage the buffered rejections (their raw text redacted too) and preferences."""
        rejections, self.rejections, self.side_chars = self.rejections, [], 0
        if self.pii_settings is not None:
            from pipeline.dedup.pii import redact

            rejections = [replace(r, raw=redact(r.raw, self.pii_settings)[0]) for r in rejections]
        self.staging.append("rejected", tables.rejected_table(rejections))
        prefs, self.prefs = self.prefs, []
        self.staging.append("preferences", tables.preferences_table(prefs))


def _user_digest(user: str | None) -> str | None:
    """sha256 of a user id as the erasure list holds it; None without a (hashable) id."""
    if user is None:
        return None
    try:
        return user_hash(user)
    except UnicodeEncodeError:  # a lone surrogate: no erasure list entry can match it
        return None


def _rows_per_group(chars: int, n: int) -> int:
    """Parquet rows per group (and per batch in memory): ~BATCH_CHARS of text, 1k-64k rows."""
    return max(1_024, min(65_536, BATCH_CHARS * max(n, 1) // max(chars, 1)))


def _stack(parts: list[np.ndarray], empty_shape: tuple[int, int]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(empty_shape, np.uint64)


def _pii_settings(pii_cfg: Any) -> Any:
    if not pii_cfg.get("enabled", True):
        return None
    from pipeline.dedup.pii import PiiSettings

    return PiiSettings.from_cfg(pii_cfg)


def _near_settings(near_cfg: Any) -> Any:
    if not near_cfg.get("enabled", True):
        return None
    from pipeline.dedup.minhash import NearDupSettings

    settings = NearDupSettings.from_cfg(near_cfg)
    bad = [f for f in settings.fields if f not in _TEXT_FIELDS]
    if bad:
        raise UserInputError(f"dedup.near.fields: {bad} not in {_TEXT_FIELDS}")
    return settings


def _near_text(record: Record, fields: Sequence[str]) -> str:
    return "\n".join(normalize(getattr(record, f)) for f in fields)


def _redact_records(settings: Any, records: list[Record]) -> list[tuple[str, str, str, int]]:
    """Replace PII in prompts and responses; return (id, field, type, n) rows."""
    if settings is None:
        return []
    from pipeline.dedup.pii import redact

    rows: list[tuple[str, str, str, int]] = []
    for record in records:
        for name in ("prompt", "response"):
            text = getattr(record, name)
            if not text:
                continue
            clean, counts = redact(text, settings)
            if counts:
                setattr(record, name, clean)
                rows.extend((record.id, name, kind, n) for kind, n in counts.items() if n)
    return rows


def _decide(stream: _Stream, near: Any, work: Path, timer: Timer) -> tuple[pa.Table, int, int]:
    """Exact, then near duplicates among the exact survivors, from the numbers the stream
    kept: a table of (idx, of_idx, method, similarity), and the exact and near counts."""
    with timer("exact"):
        columns = [np.concatenate(c) for c in zip(*stream.policy, strict=True)]
        rank = ranks(columns, stream.n)
        removed, of = exact_pairs(_stack(stream.hashes, (0, 2)), rank)
    with timer("near"):
        near_removed, near_of, sims = _near(stream, near, removed, rank, work)
    decisions = pa.table({
        "idx": np.concatenate([removed, near_removed]),
        "of_idx": np.concatenate([of, near_of]),
        "method": ["exact"] * len(removed) + ["near"] * len(near_removed),
        "similarity": np.concatenate([np.ones(len(removed)), sims]),
    })  # fmt: skip
    return decisions, len(removed), len(near_removed)


def _near(
    stream: _Stream, near: Any, exact_removed: np.ndarray, rank: np.ndarray, work: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Near duplicates among the records exact dedup kept: (removed idx, survivor idx, sim)."""
    empty = np.zeros(0, np.int64)
    survivors = np.setdiff1d(np.arange(stream.n, dtype=np.int64), exact_removed)
    if near is None or len(survivors) < 2:
        return empty, empty, np.zeros(0)
    from pipeline.dedup.minhash import near_duplicates_keyed

    keys = np.memmap(work / "bands.u64", dtype=np.uint64, mode="r", shape=(stream.n, near.bands))

    def fetch(idx: np.ndarray) -> list[str]:
        rows = stream.staging.texts(idx, near.fields)
        return ["\n".join(normalize(v) for v in row) for row in rows]

    pairs = near_duplicates_keyed(
        keys, fetch, near, rank[survivors], progress=sys.stderr.isatty(), rows=survivors,
        scratch=work,
    )  # fmt: skip
    del keys
    if not pairs:
        return empty, empty, np.zeros(0)
    local = np.array([(r, o) for r, o, _ in pairs], np.int64)
    sims = np.array([sim for _, _, sim in pairs], np.float64)
    return survivors[local[:, 0]], survivors[local[:, 1]], sims
