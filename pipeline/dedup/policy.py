"""The keep policy: which member of a duplicate cluster survives.

`priority(records, policy)` ranks every record once; the survivor of any cluster is the
member with the lowest rank. Exact and near duplicates use the same ranks, so one policy
decides both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.errors import UserInputError
from pipeline.record import Record

KEEP_KEYS: tuple[str, ...] = (
    "quality_desc",
    "feedback_desc",  # mean user feedback from the search service (data/feedback.parquet)
    "origin_real_first",
    "created_at_asc",
    "input_order",
)


def check_policy(policy: Sequence[str]) -> tuple[str, ...]:
    """Validate `dedup.keep_policy`; unknown keys fail with the list of known ones."""
    unknown = [key for key in policy if key not in KEEP_KEYS]
    if unknown:
        raise UserInputError(
            f"dedup.keep_policy: unknown key(s) {unknown}; expected some of {list(KEEP_KEYS)}"
        )
    return tuple(policy)


def _key(records: Sequence[Record], name: str, feedback: Mapping[str, float]) -> np.ndarray:
    if name == "feedback_desc":
        # Records nobody rated rank after every rated one.
        return np.array([-feedback.get(r.id, -np.inf) for r in records], dtype=np.float64)
    if name == "quality_desc":
        # Missing quality ranks after every score.
        return np.array(
            [-r.quality if r.quality is not None else np.inf for r in records], dtype=np.float64
        )
    if name == "origin_real_first":
        return np.array([0 if r.origin == "real" else 1 for r in records], dtype=np.int8)
    if name == "created_at_asc":
        return np.array(
            [r.created_at.timestamp() if r.created_at is not None else np.inf for r in records],
            dtype=np.float64,
        )
    raise ValueError(f"no column for keep-policy key {name!r}")


def policy_columns(
    records: Sequence[Record],
    policy: Sequence[str],
    feedback: Mapping[str, float] | None = None,
) -> list[np.ndarray]:
    """The policy's sort keys of a batch of records, one array per key; concatenate batches
    and pass to `ranks`. Input order is the position in the whole input and the last key
    anyway: it is unique, so keys after an `input_order` never decide anything."""
    columns = []
    for name in check_policy(policy):
        if name == "input_order":
            break
        columns.append(_key(records, name, feedback or {}))
    return columns


def ranks(columns: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Rank of each of `n` records (0 = best) sorted by `columns`, then by input order."""
    keys = [*columns, np.arange(n, dtype=np.int64)]
    # np.lexsort sorts by its last key first, so the policy's first key goes last.
    order = np.lexsort(keys[::-1])
    out = np.empty(n, dtype=np.int64)
    out[order] = np.arange(n, dtype=np.int64)
    return out


def priority(
    records: Sequence[Record],
    policy: Sequence[str],
    feedback: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Rank of each record under the policy (0 = best); input order breaks remaining ties.

    `feedback` maps record ids to their mean feedback score, for the `feedback_desc` key.
    """
    return ranks(policy_columns(records, policy, feedback), len(records))
