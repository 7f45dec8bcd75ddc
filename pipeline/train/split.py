"""A deterministic, leakage-free train/val/test split.

Records that must stay together form one component of a graph whose edges link rows that
share a session, a parent turn, a group value (`split.group_by`) or near-duplicate text
(`split.near_dup_threshold`). Whole components are ordered by a seeded hash of their
smallest rid and dealt to test, then val, then train until each reaches its fraction, so
the split depends on the data and the seed only, never on row order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xxhash

from pipeline.errors import UserInputError
from pipeline.train.data import column_values

SPLITS: tuple[str, ...] = ("train", "val", "test")
# Always grouped when present: a conversation never straddles two splits.
LINK_COLUMNS: tuple[str, ...] = ("session_id",)


class TooFewLabels(UserInputError):
    """The labelled records cannot make a classifier's split: too few of them or one class.

    A fact about the data, not a mistake in the config: the train stage skips training with
    `reason` (and exits 0) so the rest of the pipeline still runs; other callers get exit 2.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason  # short and stable: reports and MLflow tags carry it


@dataclass(frozen=True)
class SplitSettings:
    """How records are dealt to train/val/test."""

    seed: int = 42
    val_fraction: float = 0.1
    test_fraction: float = 0.1  # ignored when holdout_groups is set: test = the held-out groups
    label_field: str = "label"
    group_by: tuple[str, ...] = ()  # columns whose values never straddle splits
    holdout_column: str | None = None
    holdout_values: tuple[str, ...] = ()
    near_dup_threshold: float | None = None  # Jaccard; None = do not group similar texts
    near_dup: Mapping[str, Any] = field(default_factory=dict)  # dedup.near settings to reuse
    source: str = "records"  # named in error messages

    @classmethod
    def from_cfg(
        cls,
        cfg: Mapping[str, Any],
        seed: int = 42,
        label_field: str = "label",
        near_dup: Mapping[str, Any] | None = None,
        source: str = "records",
    ) -> SplitSettings:
        """Build from the `split` config section (plus the top-level seed and label field)."""
        known = {"val_fraction", "test_fraction", "group_by", "holdout_groups"}
        known |= {"near_dup_threshold"}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise UserInputError(f"config key 'split.{unknown[0]}' does not exist")
        group_by = cfg.get("group_by") or ()
        if isinstance(group_by, str):
            group_by = (group_by,)
        holdout = cfg.get("holdout_groups") or {}
        if holdout and ("column" not in holdout or "values" not in holdout):
            raise UserInputError("split.holdout_groups: expected {column: ..., values: [...]}")
        settings = cls(
            seed=int(seed),
            val_fraction=float(cfg.get("val_fraction", 0.1)),
            test_fraction=float(cfg.get("test_fraction", 0.1)),
            label_field=label_field,
            group_by=tuple(str(g) for g in group_by),
            holdout_column=str(holdout["column"]) if holdout else None,
            holdout_values=tuple(str(v) for v in holdout.get("values", ())) if holdout else (),
            near_dup_threshold=cfg.get("near_dup_threshold"),
            near_dup=dict(near_dup or {}),
            source=source,
        )
        for key in ("val_fraction", "test_fraction"):
            value = getattr(settings, key)
            if not 0.0 <= value < 1.0:
                raise UserInputError(f"split.{key}: {value} is not in [0, 1)")
        if settings.val_fraction + settings.test_fraction >= 1.0:
            raise UserInputError("split.val_fraction + split.test_fraction must be below 1")
        return settings


def assign_splits(frame: pd.DataFrame, settings: SplitSettings) -> pd.DataFrame:
    """Return a copy of `frame` (needs rid, id and the label column) with a `split` column."""
    labels = column_values(frame, settings.label_field, settings.source)
    if labels.dropna().astype(str).nunique() < 2:
        raise TooFewLabels(
            "too few classes",
            f"{settings.source}: label field {settings.label_field!r} has "
            f"{labels.dropna().nunique()} distinct value(s) in {len(frame)} labelled records; "
            "a classifier needs at least 2",
        )
    component = components(frame, settings)
    forced_test = np.zeros(len(frame), dtype=bool)
    if settings.holdout_column:
        values = column_values(frame, settings.holdout_column, settings.source).astype(str)
        forced_test = values.isin(settings.holdout_values).to_numpy()
        if not forced_test.any():
            raise UserInputError(
                f"split.holdout_groups: no record has {settings.holdout_column} in "
                f"{list(settings.holdout_values)}"
            )
    split = _deal(frame["rid"].to_numpy(), component, forced_test, settings)
    out = frame.copy()
    out["split"] = split
    counts = out["split"].value_counts()
    for name in SPLITS:
        if counts.get(name, 0) == 0:
            detail = (
                f"{settings.source}: the {name} split is empty ({len(frame)} labelled records, "
                f"{len(set(component))} leakage groups); adjust split.val_fraction/"
                "test_fraction/group_by or label more records"
            )
            # A zero fraction empties its split whatever the data: that is the config's fault.
            wanted = {
                "val": settings.val_fraction,
                "test": 1.0 if settings.holdout_column else settings.test_fraction,
            }
            if wanted.get(name) == 0.0:
                raise UserInputError(detail)
            raise TooFewLabels("too few labelled records", detail)
    return out


def components(frame: pd.DataFrame, settings: SplitSettings) -> np.ndarray:
    """Connected-component id of each row: rows that must land in the same split."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(frame)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    columns = [c for c in LINK_COLUMNS if c in frame.columns] + list(settings.group_by)
    for name in columns:
        a, b = _same_value_edges(column_values(frame, name, settings.source))
        rows.append(a)
        cols.append(b)
    if "parent_id" in frame.columns:
        position = pd.Series(np.arange(n), index=frame["id"].astype(str))
        position = position[~position.index.duplicated()]
        parents = frame["parent_id"].dropna().astype(str)
        found = parents[parents.isin(position.index)]
        rows.append(found.index.to_numpy())
        cols.append(position.loc[found.to_numpy()].to_numpy())
    if settings.near_dup_threshold is not None:
        a, b = _near_dup_edges(frame, settings)
        rows.append(a)
        cols.append(b)
    if rows:
        r = np.concatenate(rows).astype(np.int64)
        c = np.concatenate(cols).astype(np.int64)
    else:
        r = c = np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels


def _same_value_edges(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    # Link every row to the first row with the same (non-null) value: a star per group.
    codes, _ = pd.factorize(values, use_na_sentinel=True)
    idx = np.arange(len(values))
    present = codes >= 0
    first = pd.Series(idx[present]).groupby(codes[present]).transform("min").to_numpy()
    return idx[present], first


def _near_dup_edges(frame: pd.DataFrame, settings: SplitSettings) -> tuple[np.ndarray, np.ndarray]:
    from pipeline.dedup.minhash import NearDupSettings, near_duplicates

    texts = frame["text"].tolist() if "text" in frame.columns else frame["prompt"].tolist()
    threshold = float(settings.near_dup_threshold)
    num_perm = int(settings.near_dup.get("num_perm", 128))
    near = NearDupSettings.from_cfg(
        {**settings.near_dup, "threshold": threshold, "bands": lsh_bands(threshold, num_perm)}
    )
    pairs = near_duplicates(texts, near)
    if not pairs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    a, b, _ = zip(*pairs, strict=True)
    return np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)


def lsh_bands(threshold: float, num_perm: int, recall: float = 0.99) -> int:
    """Fewest LSH bands (most rows per band) that still find a pair at `threshold`.

    Dedup's banding is tuned for Jaccard 0.8; at the split's lower thresholds (e.g. 0.5) it
    would find few pairs, so the split picks its own: P(candidate) = 1 - (1 - t^r)^b.
    """
    for bands in sorted(b for b in range(1, num_perm + 1) if num_perm % b == 0):
        rows = num_perm // bands
        if 1 - (1 - threshold**rows) ** bands >= recall:
            return bands
    return num_perm


def _deal(
    rids: np.ndarray, component: np.ndarray, forced_test: np.ndarray, settings: SplitSettings
) -> np.ndarray:
    n = len(rids)
    comp = pd.DataFrame({"component": component, "rid": rids, "test": forced_test})
    groups = comp.groupby("component").agg(
        key=("rid", "min"), size=("rid", "size"), test=("test", "any")
    )
    groups["order"] = [_hash(settings.seed, int(k)) for k in groups["key"]]
    groups = groups.sort_values(["order", "key"])
    holdout = bool(settings.holdout_column)
    test_target = 0 if holdout else round(settings.test_fraction * n)
    val_target = round(settings.val_fraction * n)
    taken = {"test": 0, "val": 0}
    side: dict[int, str] = {}
    for cid, size, is_test in zip(groups.index, groups["size"], groups["test"], strict=True):
        if is_test or taken["test"] < test_target:
            name = "test"
        elif taken["val"] < val_target:
            name = "val"
        else:
            name = "train"
        if name != "train":
            taken[name] += int(size)
        side[int(cid)] = name
    return np.array([side[int(c)] for c in component], dtype=object)


def _hash(seed: int, key: int) -> int:
    return xxhash.xxh64_intdigest(f"{seed}:{key}".encode())


def split_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Records per split, for reports."""
    counts = frame["split"].value_counts()
    return {name: int(counts.get(name, 0)) for name in SPLITS}


def leaks(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, int]:
    """How many values of each column occur in more than one split (0 everywhere = no leak)."""
    out = {}
    for name in columns:
        values = column_values(frame, name)
        seen = pd.DataFrame({"v": values, "s": frame["split"]}).dropna()
        out[name] = int((seen.groupby("v")["s"].nunique() > 1).sum())
    return out
