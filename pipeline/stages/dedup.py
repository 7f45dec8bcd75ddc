"""The dedup stage: read, validate, erase, redact PII, normalise, exact, near, publish.

`run(cfg, root)` is the algorithm, one timed step per line; `main()` reads params.yaml.
Everything is written to temporary paths and published by rename, under a lock.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.dedup.collect import Collected, collect
from pipeline.dedup.exact import exact_duplicates
from pipeline.dedup.normalize import normalize
from pipeline.dedup.policy import check_policy, priority
from pipeline.dedup.report import accounting, by_reason, log_mlflow
from pipeline.dedup.tables import Duplicate, Rejection
from pipeline.dedup.transforms import get_transform
from pipeline.dedup.validate import FieldMap, ValidateSettings
from pipeline.errors import UserInputError
from pipeline.io.atomic import atomic_dir, write_json
from pipeline.io.files import data_hash, read_erasures, read_feedback_scores
from pipeline.io.lock import exclusive
from pipeline.io.readers import ReadStats, dataset_files, read_dataset
from pipeline.record import Record
from pipeline.tracking import TrackingSettings, git_commit, pipeline_run

_TEXT_FIELDS = ("prompt", "response", "label", "user_id", "session_id", "parent_id", "source")


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
        )


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
    root = Path(root)
    s = DedupSettings.from_cfg(cfg)
    transform = get_transform(s.transform)
    params = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "dedup")}
    params_json = json.dumps(params, sort_keys=True)
    dedup_dir = root / s.dedup_dir
    with exclusive(dedup_dir.parent / f".{dedup_dir.name}.lock", "`pipeline dedup`"):
        _remove_stale_tmp(dedup_dir)  # left by a killed run; the lock says none is live
        timer = Timer()
        stats = ReadStats()
        files = dataset_files(root / s.data_path)
        with timer("hash"):
            digest = data_hash(files)
        with timer("read"):
            rows = _progress(read_dataset(files, s.validate.max_line_bytes, stats), "read")
            got = collect(rows, s.fields, s.validate, transform)
        with timer("erase"):
            records, erased = _erase(got.records, read_erasures(root / s.erasures))
        with timer("feedback"):
            feedback = read_feedback_scores(root / s.feedback)
            from_feedback = _fill_quality(records, feedback) if s.fill_quality else 0
        with timer("pii"):
            pii_rows = _redact(cfg.dedup.pii, records, got)
        with timer("normalize"):
            rank = priority(records, s.keep_policy, feedback)
            keys = ["\x1f".join(normalize(getattr(r, f)) for f in s.exact_fields) for r in records]
        with timer("exact"):
            exact = [Duplicate(i, j, "exact", 1.0) for i, j in exact_duplicates(keys, rank)]
        with timer("near"):
            near = _near(cfg.dedup.near, records, {d.index for d in exact}, rank)
        with timer("write"):
            report_counts = _publish(
                dedup_dir, s, records, exact + near, got, pii_rows, digest, params_json
            )
        report: dict[str, Any] = {
            "dataset": s.fields.default_source,
            "data_hash": digest,
            "files": len(stats.files),
            "input_lines": stats.lines,
            "blank_lines": stats.blank,
            "input_records": got.input_records,
            "rejected": by_reason([r.reason for r in got.rejections]),
            "exact_duplicates": len(exact),
            "near_duplicates": len(near),
            "erased": erased,
            "feedback": {"records_rated": len(feedback), "quality_from_feedback": from_feedback},
            **report_counts,
            "seconds": timer.total(),
        }
        report["accounting"] = accounting(report)
        write_json(root / s.reports / "dedup.json", report)
    commit = git_commit(root)
    tags = {"git_commit": commit, "data_hash": digest, "stage": "dedup",
            "pipeline_run": pipeline_run(commit, digest, params)}  # fmt: skip
    log_mlflow(report, params, tags, TrackingSettings.from_cfg(cfg.tracking), root)
    return report


def _remove_stale_tmp(dedup_dir: Path) -> None:
    for stale in dedup_dir.parent.glob(f".{dedup_dir.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)


def _erase(records: list[Record], erased_users: frozenset[str]) -> tuple[list[Record], int]:
    """Drop records of users on the erasure list (sha256 of user_id)."""
    if not erased_users:
        return records, 0
    kept = [
        r for r in records
        if r.user_id is None
        or hashlib.sha256(r.user_id.encode("utf-8")).hexdigest() not in erased_users
    ]  # fmt: skip
    return kept, len(records) - len(kept)


def _redact(pii_cfg: Any, records: list[Record], got: Collected) -> list[tuple[str, str, str, int]]:
    """Replace PII in prompts, responses and rejected raw text; return (id, field, type, n)."""
    if not pii_cfg.get("enabled", True):
        return []
    from pipeline.dedup.pii import PiiSettings, redact

    settings = PiiSettings.from_cfg(pii_cfg)
    rows: list[tuple[str, str, str, int]] = []
    for record in records:
        for field in ("prompt", "response"):
            text = getattr(record, field)
            if not text:
                continue
            clean, counts = redact(text, settings)
            if counts:
                setattr(record, field, clean)
                rows.extend((record.id, field, kind, n) for kind, n in counts.items() if n)
    # Rejected rows keep their raw text for debugging; it must not keep the PII.
    got.rejections[:] = [
        Rejection(r.file, r.line, r.reason, r.detail, r.record_id, redact(r.raw, settings)[0])
        for r in got.rejections
    ]
    return rows


def _near(near_cfg: Any, records: list[Record], removed: set[int], rank: Any) -> list[Duplicate]:
    """Near duplicates among the records exact dedup kept."""
    if not near_cfg.get("enabled", True):
        return []
    from pipeline.dedup.minhash import NearDupSettings, near_duplicates

    settings = NearDupSettings.from_cfg(near_cfg)
    bad = [f for f in settings.fields if f not in _TEXT_FIELDS]
    if bad:
        raise UserInputError(f"dedup.near.fields: {bad} not in {_TEXT_FIELDS}")
    survivors = [i for i in range(len(records)) if i not in removed]
    texts = [
        "\n".join(normalize(getattr(records[i], f)) for f in settings.fields) for i in survivors
    ]
    pairs = near_duplicates(texts, settings, rank[survivors], progress=sys.stderr.isatty())
    return [Duplicate(survivors[r], survivors[s], "near", sim) for r, s, sim in pairs]


def _publish(
    dedup_dir: Path,
    s: DedupSettings,
    records: list[Record],
    duplicates: Sequence[Duplicate],
    got: Collected,
    pii_rows: list[tuple[str, str, str, int]],
    digest: str,
    params_json: str,
) -> dict[str, Any]:
    """Build the store and records.parquet in a temporary directory and publish both at once."""
    from pipeline.dedup import tables
    from pipeline.io.files import write_parquet
    from pipeline.store.records import write_store

    removed = {d.index for d in duplicates}
    kept = [r for i, r in enumerate(records) if i not in removed]
    pii_by_type: dict[str, int] = {}
    for _, _, kind, n in pii_rows:
        pii_by_type[kind] = pii_by_type.get(kind, 0) + n
    counts = {
        "kept": len(kept),
        "preferences": len(got.preferences),
        "pii": {"total": sum(pii_by_type.values()), "by_type": dict(sorted(pii_by_type.items()))},
    }
    meta = {
        "data_hash": digest,
        "params": params_json,
        "counts": json.dumps(
            {"input_records": got.input_records, "kept": len(kept), "duplicates": len(removed),
             "rejected": len(got.rejections)}, sort_keys=True),
    }  # fmt: skip
    kept_table = tables.records_table(kept)
    with atomic_dir(dedup_dir) as tmp:
        write_store(
            tmp / s.store_name,
            {
                "records": kept_table,
                "duplicates": tables.duplicates_table(records, duplicates),
                "rejected": tables.rejected_table(got.rejections),
                "preferences": tables.preferences_table(got.preferences),
                "pii_redactions": tables.pii_table(pii_rows),
            },
            meta,
        )
        write_parquet(kept_table, tmp / s.records_name)
    return counts


def main(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Run the stage on params.yaml (with dotted `key=value` overrides) from the current dir."""
    from pipeline.config import load_params

    return run(load_params(overrides=overrides), Path("."))


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2, sort_keys=True))
