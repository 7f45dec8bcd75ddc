"""The drift statistics of a window, pure functions over counts and vectors.

- Labels: PSI of the predicted-label distribution against the training labels (an effect
  size: it does not grow with the window, so one threshold fits windows of any size) and a
  chi-square test (reported: with thousands of predictions it rejects for any model whose
  errors are not perfectly balanced, so it does not decide alone).
- Inputs: maximum mean discrepancy (MMD) between the window's embeddings and the training
  set's, RBF kernel with the median-distance bandwidth, p-value by permutation. Why MMD
  rather than a domain classifier's AUC: the permutation p-value is calibrated at any
  window size (the false-alarm rate of an undrifted window is the threshold itself), with
  no classifier, cross-validation split or AUC threshold to tune per window size; on 300 +
  300 vectors it costs ~0.1 s. docs/monitor.md has the comparison with Evidently.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

_EPS = 1e-4  # a label absent on one side: PSI stays finite (the usual smoothing)


def projection(dim_in: int, dims: int, seed: int) -> np.ndarray:
    """A fixed (dim_in, dims) Gaussian random projection: distances are kept within a few
    per cent (Johnson-Lindenstrauss), the text is much harder to invert than from the vector."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((dim_in, dims)) / np.sqrt(dims)).astype(np.float32)


def proportions(counts: Mapping[str, int], labels: list[str]) -> np.ndarray:
    """Smoothed proportions of `counts` over `labels` (in that order)."""
    values = np.array([counts.get(label, 0) for label in labels], dtype=np.float64)
    total = values.sum()
    share = values / total if total else np.full(len(labels), 1.0 / max(1, len(labels)))
    share = np.maximum(share, _EPS)
    return share / share.sum()


def psi(expected: Mapping[str, int], actual: Mapping[str, int]) -> float:
    """Population stability index of `actual` against `expected` (0: same distribution;
    above 0.25 is the conventional "significant shift")."""
    labels = sorted(set(expected) | set(actual))
    e, a = proportions(expected, labels), proportions(actual, labels)
    return float(np.sum((a - e) * np.log(a / e)))


def chi_square(expected: Mapping[str, int], actual: Mapping[str, int]) -> tuple[float, float]:
    """Chi-square goodness of fit of the `actual` counts to the `expected` proportions:
    (statistic, p-value)."""
    from scipy.stats import chisquare

    labels = sorted(set(expected) | set(actual))
    observed = np.array([actual.get(label, 0) for label in labels], dtype=np.float64)
    if observed.sum() == 0 or len(labels) < 2:
        return 0.0, 1.0
    share = proportions(expected, labels)
    result = chisquare(observed, share * observed.sum())
    return float(result.statistic), float(result.pvalue)


def _sq_distances(z: np.ndarray) -> np.ndarray:
    norms = np.einsum("ij,ij->i", z, z)
    return np.maximum(norms[:, None] + norms[None, :] - 2.0 * (z @ z.T), 0.0)


def mmd_test(x: np.ndarray, y: np.ndarray, permutations: int, seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 between samples `x` (reference) and `y` with an RBF kernel, and its
    permutation p-value: (mmd2, p). The kernel matrix is computed once; each permutation
    only re-sums it."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"MMD needs at least 2 vectors on each side, got {n} and {m}")
    d2 = _sq_distances(np.concatenate([x, y]))
    upper = d2[np.triu_indices_from(d2, k=1)]
    bandwidth = float(np.median(upper)) or 1.0  # the median heuristic
    kernel = np.exp(-d2 / bandwidth)
    np.fill_diagonal(kernel, 0.0)  # the unbiased estimate leaves out k(a, a)

    def statistic(in_x: np.ndarray) -> float:
        a = in_x.astype(np.float64)
        b = 1.0 - a
        ka, kb = kernel @ a, kernel @ b  # two mat-vecs instead of three sub-matrix copies
        return float(a @ ka / (n * (n - 1)) + b @ kb / (m * (m - 1)) - 2.0 * (a @ kb) / (n * m))

    mask = np.zeros(n + m, dtype=bool)
    mask[:n] = True
    observed = statistic(mask)
    rng = np.random.default_rng(seed)
    exceed = sum(statistic(rng.permutation(mask)) >= observed for _ in range(permutations))
    return observed, (exceed + 1) / (permutations + 1)


def subsample(rows: np.ndarray, size: int, seed: int) -> np.ndarray:
    """At most `size` rows, a seeded sample without replacement (in their order)."""
    if len(rows) <= size:
        return rows
    pick = np.sort(np.random.default_rng(seed).choice(len(rows), size, replace=False))
    return rows[pick]
