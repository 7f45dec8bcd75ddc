"""The streaming half of the dedup stage: read -> erase -> validate -> feedback -> secrets, PII ->
each step's `observe` -> staging, a batch at a time.

Per record only fixed-size numbers stay in memory (the keep-policy keys here, whatever the
steps keep); texts go to the staging database a batch at a time, so an input larger than
memory works.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.dedup import tables
from pipeline.dedup.collect import Collector, Preference
from pipeline.dedup.policy import policy_columns, ranks
from pipeline.dedup.steps import Step
from pipeline.dedup.tables import Rejection
from pipeline.io.files import user_hash
from pipeline.io.readers import RawRow
from pipeline.record import Record

# A batch is also flushed at this many characters of prompt + response, so long texts
# do not make a batch of `batch_records` records large.
BATCH_CHARS = 16_000_000


@dataclass
class IntakeCounts:
    """What the intake saw, for the report."""

    input_records: int = 0  # candidate records: a flat row is one, a conversation one per turn
    staged: int = 0  # records that passed validation and erasure, in input order
    erased: int = 0
    from_feedback: int = 0  # records given a quality from their feedback
    preferences: int = 0
    chars: int = 0  # prompt + response characters staged
    rejected: Counter[str] = field(default_factory=Counter)
    pii: Counter[str] = field(default_factory=Counter)  # redactions by type
    secrets: Counter[str] = field(default_factory=Counter)  # secret redactions by type
    rows_by_shape: Counter[str] = field(default_factory=Counter)  # input rows by shape
    records_by_shape: Counter[str] = field(default_factory=Counter)  # their candidate records


@dataclass(frozen=True)
class IntakeSettings:
    """The parts of the config the intake reads."""

    keep_policy: tuple[str, ...]
    fill_quality: bool
    batch_records: int
    pii: Any  # PiiSettings | None (None: PII redaction off)
    secrets: Any = None  # SecretSettings | None (None: secrets redaction off)


class Intake:
    """Streams rows into the staging database and the steps; `rank()` afterwards."""

    def __init__(
        self,
        settings: IntakeSettings,
        steps: Mapping[str, Step],
        staging: Any,  # pipeline.store.staging.Staging
        feedback: Mapping[str, float],
        erasures: frozenset[str],
        seconds: Counter[str],
    ) -> None:
        self.settings, self.steps, self.staging = settings, steps, staging
        self.feedback, self.erasures, self.seconds = feedback, erasures, seconds
        self.counts = IntakeCounts()
        self._policy: list[list[np.ndarray]] = []
        self._records: list[Record] = []
        self._record_chars = 0
        self._rejections: list[Rejection] = []
        self._side_chars = 0
        self._prefs: list[Preference] = []
        self._erased_ids: dict[int, str] = {}

    def consume(self, rows: Iterable[RawRow], collector: Collector, user_of: Any) -> None:
        """Run every row through the erasure list and the collector; stage what comes out."""
        erased_rows = 0
        begin = time.perf_counter()
        for row in rows:
            digest = _user_digest(user_of(row))
            if digest is not None and digest in self.erasures:
                # Before validation: an erased user's row is never stored, valid or not.
                erased_rows += 1
                collector.count_unread(row)
                continue
            for item in collector.feed(row):
                if isinstance(item, Record):
                    self._record(item)
                elif isinstance(item, Rejection):
                    self._reject(replace(item, user_hash=digest))
                else:
                    self._prefer(item)
        self._flush()
        self._flush_side()
        inner = sum(self.seconds[k] for k in ("secrets", "pii", "minhash", "stage"))
        self.seconds["read"] += time.perf_counter() - begin - inner
        self.counts.erased += erased_rows
        self.counts.input_records = collector.input_records + erased_rows
        self.counts.rows_by_shape.update(collector.rows_by_shape)
        self.counts.records_by_shape.update(collector.records_by_shape)

    def rank(self) -> np.ndarray:
        """Keep-policy rank of every staged record (0 = best): the survivor of any cluster."""
        columns = [np.concatenate(c) for c in zip(*self._policy, strict=True)]
        return ranks(columns, self.counts.staged)

    def first_id(self, rid: int) -> str | None:
        """The first id with this rid, for the collector's rid-collision message."""
        pending = next((r.id for r in self._records if r.rid == rid), None)
        return pending or self._erased_ids.get(rid) or self.staging.first_id(rid)

    def _record(self, record: Record) -> None:
        # A shape reader may give its turn records a user id its raw row did not show (a
        # conversation's `user`).
        user = record.user_id
        if user is not None and self.erasures and user_hash(user) in self.erasures:
            self.counts.erased += 1
            self._erased_ids.setdefault(record.rid, record.id)
            return
        if self.settings.fill_quality:
            self.counts.from_feedback += _fill_quality(record, self.feedback)
        self._records.append(record)
        chars = len(record.prompt) + len(record.response or "")
        self._record_chars += chars
        self.counts.chars += chars
        full = len(self._records) >= self.settings.batch_records
        if full or self._record_chars >= BATCH_CHARS:
            self._flush()

    def _reject(self, rejection: Rejection) -> None:
        self.counts.rejected[rejection.reason] += 1
        self._rejections.append(rejection)
        self._side_chars += len(rejection.raw)  # up to 100k characters each
        full = len(self._rejections) >= self.settings.batch_records
        if full or self._side_chars >= BATCH_CHARS:
            self._flush_side()

    def _prefer(self, preference: Preference) -> None:
        self._prefs.append(preference)
        self.counts.preferences += 1
        if len(self._prefs) >= self.settings.batch_records:
            self._flush_side()

    def _flush(self) -> None:
        batch, self._records, self._record_chars = self._records, [], 0
        if not batch:
            return
        begin = time.perf_counter()
        # Secrets first: a connection string's `pass@host` must not become an e-mail.
        secret_rows = _redact_records(self.settings.secrets, batch, _redact_secrets)
        for _, _, kind, count in secret_rows:
            self.counts.secrets[kind] += count
        self.seconds["secrets"] += time.perf_counter() - begin
        begin = time.perf_counter()
        pii_rows = _redact_records(self.settings.pii, batch, _redact_pii)
        for _, _, kind, count in pii_rows:
            self.counts.pii[kind] += count
        self.seconds["pii"] += time.perf_counter() - begin
        begin = time.perf_counter()
        start = self.counts.staged
        self._policy.append(policy_columns(batch, self.settings.keep_policy, self.feedback))
        for step in self.steps.values():
            step.observe(batch, start)
        self.seconds["minhash"] += time.perf_counter() - begin
        begin = time.perf_counter()
        from pipeline.store.staging import STAGED_SCHEMA

        columns = tables.record_columns(batch)
        columns["idx"] = list(range(start, start + len(batch)))
        self.staging.append("staged", pa.table(columns, schema=STAGED_SCHEMA))
        # Secret types share the table (its pii_type column) with PII types: names differ.
        self.staging.append("pii_redactions", tables.pii_table(secret_rows + pii_rows))
        self.counts.staged += len(batch)
        self.seconds["stage"] += time.perf_counter() - begin

    def _flush_side(self) -> None:
        """Stage the buffered rejections (their raw text redacted too) and preferences."""
        rejections, self._rejections, self._side_chars = self._rejections, [], 0
        for settings, redact in ((self.settings.secrets, _redact_secrets),
                                 (self.settings.pii, _redact_pii)):  # fmt: skip
            if settings is not None:
                rejections = [replace(r, raw=redact(r.raw, settings)[0]) for r in rejections]
        self.staging.append("rejected", tables.rejected_table(rejections))
        prefs, self._prefs = self._prefs, []
        self.staging.append("preferences", tables.preferences_table(prefs))


def _user_digest(user: str | None) -> str | None:
    """sha256 of a user id as the erasure list holds it; None without a (hashable) id."""
    if user is None:
        return None
    try:
        return user_hash(user)
    except UnicodeEncodeError:  # a lone surrogate: no erasure list entry can match it
        return None


def _fill_quality(record: Record, feedback: Mapping[str, float]) -> int:
    """Give an unscored record the quality its feedback implies (1 + 4 x mean score in
    [0, 1]), so the `quality` filter and keep policy see it; 1 if it was filled."""
    score = feedback.get(record.id)
    if record.quality is None and score is not None:
        record.quality = round(1.0 + 4.0 * score, 6)
        return 1
    return 0


def _redact_pii(text: str, settings: Any) -> tuple[str, dict[str, int]]:
    from pipeline.dedup.pii import redact

    return redact(text, settings)


def _redact_secrets(text: str, settings: Any) -> tuple[str, dict[str, int]]:
    from pipeline.dedup.secrets import redact_secrets

    return redact_secrets(text, settings)


def _redact_records(
    settings: Any, records: Sequence[Record], redact: Any
) -> list[tuple[str, str, str, int]]:
    """Replace PII or secrets (`redact`) in prompts and responses; return (id, field, type, n)
    rows."""
    if settings is None:
        return []
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
