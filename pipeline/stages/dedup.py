"""The dedup stage: read, erase, validate, redact PII, the curation steps, publish.

`run(cfg, root)` is the algorithm (`pipeline dedup` calls it). It streams: rows are read,
validated, erased and redacted a batch at a time (`pipeline.dedup.intake`); each batch goes
to a scratch DuckDB file (`pipeline.store.staging`) and through every curation step's
`observe`, which keeps a few fixed-size numbers per record, never the texts, so an input
larger than memory works. The steps (`dedup.steps`: exact, near, ...) then decide in config
order, each over what the steps before it kept, and the store and records.parquet are built
from the scratch file by SQL. Everything is written under a temporary directory and
published by rename, holding the writer lock over the published data for the whole run
(pipeline/service/writer.py): an erasure waits for the run and then applies to what it
published, so the run cannot bring an erased user back.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.dedup.collect import Collector
from pipeline.dedup.corrections import apply as apply_corrections
from pipeline.dedup.corrections import read as read_corrections
from pipeline.dedup.intake import BATCH_CHARS, Intake, IntakeCounts, IntakeSettings
from pipeline.dedup.policy import check_policy
from pipeline.dedup.report import curation, log_mlflow
from pipeline.dedup.shapes import FORMATS, ShapeReader
from pipeline.dedup.steps import Step, StepResult, build_steps, run_steps
from pipeline.dedup.steps.run import decision_table, filtered_counts
from pipeline.dedup.userid import UserIdReader
from pipeline.dedup.validate import FieldMap, ValidateSettings
from pipeline.errors import UserInputError
from pipeline.io.atomic import atomic_dir
from pipeline.io.files import data_hash, read_erasures, read_feedback_scores
from pipeline.io.pause import point
from pipeline.io.readers import ReadStats, read_dataset, scan_dataset
from pipeline.io.reports import write_report
from pipeline.tracking import TrackingSettings, git_commit, pipeline_run

_MEMORY = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


@dataclass(frozen=True)
class DedupSettings:
    """The slices of the config the stage reads (the steps read their own sections)."""

    data_path: str
    fields: FieldMap
    format: str  # data.format: auto, flat or a shape (pipeline/dedup/shapes)
    validate: ValidateSettings
    keep_policy: tuple[str, ...]
    dedup_dir: str
    store_name: str
    records_name: str
    erasures: str
    feedback: str
    corrections: str  # reviewed labels (pipeline/dedup/corrections.py)
    fill_quality: bool
    reports: str
    batch_records: int
    memory_limit: str
    pii: Any  # PiiSettings, or None when redaction is off
    secrets: Any = None  # SecretSettings, or None when secrets redaction is off
    engine: str = "local"  # dedup.engine: local | ray (pipeline/dedup/ray_engine.py)
    ray: Any = None  # RaySettings when engine is ray

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> DedupSettings:
        paths = cfg.paths
        for key in ("store", "records"):
            if Path(paths[key]).parent != Path(paths.dedup_dir):
                raise UserInputError(f"paths.{key}: must be inside paths.dedup_dir")
        return cls(
            data_path=str(cfg.data.path),
            fields=FieldMap.from_cfg(cfg.data),
            format=_format(cfg.data),
            validate=ValidateSettings.from_cfg(cfg.dedup.validate),
            keep_policy=check_policy(list(cfg.dedup.keep_policy)),
            dedup_dir=str(paths.dedup_dir),
            store_name=Path(paths.store).name,
            records_name=Path(paths.records).name,
            erasures=str(paths.erasures),
            feedback=str(paths.feedback),
            corrections=str(paths.get("corrections", "data/corrections.jsonl")),
            fill_quality=bool(cfg.dedup.feedback.fill_quality),
            reports=str(paths.reports),
            batch_records=_positive(cfg.dedup.stream.batch_records, "dedup.stream.batch_records"),
            memory_limit=_memory(str(cfg.dedup.stream.duckdb_memory_limit)),
            pii=_pii_settings(cfg.dedup.pii),
            secrets=_secret_settings(cfg.dedup.get("secrets") or {}),
            engine=engine_of(cfg.dedup),
            ray=_ray_settings(cfg.dedup),
        )


def _format(data: Any) -> str:
    """`data.format` (default auto); `data.transform`, its older name, is still read."""
    format, transform = data.get("format") or "auto", data.get("transform")
    if transform and format not in ("auto", transform):
        raise UserInputError(
            f"data.transform={transform!r} and data.format={format!r} disagree; "
            "`transform` is the older name of `format`: keep one"
        )
    chosen = str(transform or format)
    if chosen not in FORMATS:
        raise UserInputError(f"data.format: unknown {chosen!r}; expected one of {list(FORMATS)}")
    return chosen


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
        self.seconds: Counter[str] = Counter()
        self.start = time.perf_counter()

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        begin = time.perf_counter()
        yield
        self.seconds[step] += time.perf_counter() - begin

    def total(self) -> dict[str, float]:
        seconds = {k: round(v, 3) for k, v in self.seconds.items()}
        return {**seconds, "total": round(time.perf_counter() - self.start, 3)}


@dataclass(frozen=True)
class Inputs:
    """What the stage read before curating: the files, the erasure list, the feedback."""

    files: list[Path]
    stats: ReadStats  # filled while the files are read
    erasures: frozenset[str]
    feedback: dict[str, float]
    digest: str
    params: dict[str, Any]
    corrections: dict[str, Any] = field(default_factory=dict)  # record id -> last decision


def run(cfg: DictConfig, root: Path = Path(".")) -> dict[str, Any]:
    """Deduplicate `cfg.data` into the store and records.parquet under `root`; return the report."""
    from pipeline.service.settings import ServicePaths
    from pipeline.service.writer import writer

    root, s, steps = Path(root), DedupSettings.from_cfg(cfg), build_steps(cfg.dedup)
    if s.engine == "ray":
        from pipeline.dedup.ray_engine import check_steps

        check_steps(steps)
    for step in steps.values():
        step.bind(root, cfg)
    params = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "dedup")}
    paths = ServicePaths.from_cfg(cfg.paths, cfg.get("tracking")).under(root)
    # Taken before reading anything, and held until the report is written; a killed
    # run's temporaries are removed and unfinished erasures completed first.
    with writer(paths, "pipeline dedup"):
        point("dedup:locked")
        timer, stats = Timer(), ReadStats()
        scan = scan_dataset(root / s.data_path)
        with timer("hash"):
            digest = data_hash(scan.files)
        inputs = Inputs(scan.files, stats, read_erasures(root / s.erasures),
                        read_feedback_scores(root / s.feedback), digest, params,
                        read_corrections(root / s.corrections))  # fmt: skip
        with atomic_dir(root / s.dedup_dir) as tmp:
            counts = _curate(s, steps, inputs, tmp, timer)
            point("dedup:written")
        point("dedup:published")
        report = {**_read_figures(s, scan, inputs), **counts, "seconds": timer.total()}
        write_report(root / s.reports, "dedup.json", report)
    _track(cfg, root, report, digest, params)
    return report


def _read_figures(s: DedupSettings, scan: Any, inputs: Inputs) -> dict[str, Any]:
    """The report's head: the dataset, its hash, and what the readers saw."""
    return {
        "dataset": s.fields.default_source,
        "data_hash": inputs.digest,
        "files": len(inputs.stats.files),
        "skipped_files": scan.skipped,  # files under data.path not read, with why
        "input_lines": inputs.stats.lines,
        "blank_lines": inputs.stats.blank,
    }


def _track(
    cfg: DictConfig, root: Path, report: dict[str, Any], digest: str, params: dict[str, Any]
) -> None:
    """The report and params as an MLflow run, tagged with its lineage."""
    commit = git_commit(root)
    tags = {"git_commit": commit, "data_hash": digest, "stage": "dedup",
            "pipeline_run": pipeline_run(commit, digest, params)}  # fmt: skip
    log_mlflow(report, params, tags, TrackingSettings.from_cfg(cfg.tracking), root)


def _curate(
    s: DedupSettings, steps: Mapping[str, Step], inputs: Inputs, tmp: Path, timer: Timer
) -> dict[str, Any]:
    """Stream the input into a scratch database and the steps, let the steps decide, write
    the store and records.parquet into `tmp`; return the report's counts."""
    from pipeline.store.staging import Staging

    work = tmp / ".work"
    staging = Staging(work, s.memory_limit)
    try:
        if s.engine == "ray":
            intake, results = _curate_on_ray(s, steps, inputs, staging, work, timer)
        else:
            intake = Intake(_intake_settings(s), steps, staging, inputs.feedback,
                            inputs.erasures, timer.seconds)  # fmt: skip
            _stream(s, steps, intake, inputs, work)
            results = run_steps(steps, intake.rank(), staging.texts, sys.stderr.isatty())
        for result in results:
            timer.seconds[result.name] += result.seconds
        counts = curation(intake.counts, results, len(inputs.feedback), filtered_counts(results))
        with timer("labels"):
            counts["label_corrections"] = apply_corrections(staging.con, inputs.corrections)
        with timer("write"):
            _write(s, staging, tmp, counts, results, inputs, intake.counts)
        return counts
    finally:
        staging.close()
        shutil.rmtree(work, ignore_errors=True)


def _curate_on_ray(
    s: DedupSettings,
    steps: Mapping[str, Step],
    inputs: Inputs,
    staging: Any,
    work: Path,
    timer: Timer,
) -> tuple[Intake, list[StepResult]]:
    """`dedup.engine=ray`: every step on Ray Data, reading and validation included
    (pipeline/dedup/ray_engine.py); the same staged records and decisions as the local one."""
    from pipeline.dedup import ray_engine

    with ray_engine.cluster(s.ray) as ray:
        intake = ray_engine.RayIntake(_intake_settings(s), steps, staging, inputs.feedback,
                                      inputs.erasures, timer.seconds)  # fmt: skip
        records, offsets = ray_engine.read(ray, intake, inputs.files, inputs.stats, s.fields,
                                           s.validate, s.format, s.ray)  # fmt: skip
        prepared, failed = ray_engine.prepare_and_stage(ray, intake, steps, records, offsets)
        del records
        progress = sys.stderr.isatty()
        results = ray_engine.run_steps_on_ray(
            ray, steps, prepared, failed, intake.rank(), staging.texts, s.ray, progress
        )
        del prepared  # freed while the cluster is up
    return intake, results


def _stream(
    s: DedupSettings, steps: Mapping[str, Step], intake: Intake, inputs: Inputs, work: Path
) -> None:
    """Every row through the intake; each step has its own scratch directory meanwhile."""
    for name, step in steps.items():
        (work / "steps" / name).mkdir(parents=True)
        step.open(work / "steps" / name)
    try:
        rows = _progress(read_dataset(inputs.files, s.validate.max_line_bytes, inputs.stats))
        shapes = ShapeReader(s.format, s.fields)
        collector = Collector(s.fields, s.validate, shapes, intake.first_id)
        intake.consume(rows, collector, UserIdReader(s.fields))
    finally:
        for step in steps.values():
            step.close()


def _write(
    s: DedupSettings,
    staging: Any,
    tmp: Path,
    counts: Mapping[str, Any],
    results: list[StepResult],
    inputs: Inputs,
    intake: IntakeCounts,
) -> None:
    """The store (with every step's drops) and records.parquet, from the scratch database."""
    summary = {"input_records": counts["input_records"], "kept": counts["kept"],
               "duplicates": sum(r.dropped for r in results) - counts["filtered"]["total"],
               "filtered": counts["filtered"]["total"],
               "rejected": counts["rejected"]["total"]}  # fmt: skip
    meta = {"data_hash": inputs.digest, "params": json.dumps(inputs.params, sort_keys=True),
            "counts": json.dumps(summary, sort_keys=True)}  # fmt: skip
    staging.write_store(tmp / s.store_name, decision_table(results), meta)
    staging.write_records_parquet(
        tmp / s.records_name, _rows_per_group(intake.chars, intake.staged)
    )


def _intake_settings(s: DedupSettings) -> IntakeSettings:
    return IntakeSettings(s.keep_policy, s.fill_quality, s.batch_records, s.pii, s.secrets)


def _progress(items: Any) -> Any:
    from tqdm import tqdm

    return tqdm(items, desc="read", unit=" rows", file=sys.stderr, disable=not sys.stderr.isatty())


def _rows_per_group(chars: int, n: int) -> int:
    """Parquet rows per group (and per batch in memory): ~BATCH_CHARS of text, 1k-64k rows."""
    return max(1_024, min(65_536, BATCH_CHARS * max(n, 1) // max(chars, 1)))


def _pii_settings(pii_cfg: Any) -> Any:
    if not pii_cfg.get("enabled", True):
        return None
    from pipeline.dedup.pii import PiiSettings

    return PiiSettings.from_cfg(pii_cfg)


def _ray_settings(dedup: Any) -> Any:
    if engine_of(dedup) != "ray":
        return None
    from pipeline.dedup.ray_engine import RaySettings

    section = dedup.get("ray")
    return RaySettings.from_cfg(OmegaConf.to_container(section) if section is not None else {})


def engine_of(dedup: Any) -> str:
    """`dedup.engine`: local (default) or ray."""
    engine = str(dedup.get("engine") or "local")
    if engine not in ("local", "ray"):
        raise UserInputError(f"config dedup.engine={engine!r}: expected local or ray")
    return engine


def _secret_settings(cfg: Any) -> Any:
    if not cfg.get("enabled", True):
        return None
    from pipeline.dedup.secrets import SecretSettings

    return SecretSettings.from_cfg(cfg)
