"""The peer of benchmarks/monitor.py: Evidently's embedding drift methods on the same windows.

    PYTHON benchmarks/monitor_peer.py WINDOWS.npz   (prints JSON)

Run by benchmarks/monitor.py with `--peer-python`, an interpreter where `evidently` imports:
Evidently 0.7 needs pandas < 3 (this project has pandas 3) and alibi-detect needs numpy < 2,
so neither installs beside the project; `python -m venv peer && peer/bin/pip install
evidently==0.7.23 "pandas<3"` does. The methods are called directly: EmbeddingsDriftMetric
runs the same function and then a t-SNE for its plot, which would dominate the timing.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd
from evidently.legacy.metrics.data_drift.embedding_drift_methods import mmd, model


def main(path: str) -> None:
    data = np.load(path)
    reference = pd.DataFrame(data["reference"])
    methods = {
        # EmbeddingsDriftMetric's default for a reference under 1,000 rows: a domain
        # classifier's ROC AUC against the 95th percentile of random AUCs.
        "evidently-model": model(bootstrap=True),
        "evidently-mmd": mmd(bootstrap=True),  # MMD against a bootstrap of the reference
    }
    out: dict[str, dict] = {}
    names = sorted(k for k in data.files if k.startswith("window_"))
    for name, method in methods.items():
        flags, seconds = [], []
        for window in names:
            current = pd.DataFrame(data[window])
            np.random.seed(0)  # its bootstrap draws from numpy's global generator
            started = time.perf_counter()
            # Copies: the domain classifier adds a target column to the frames it is given.
            _, drifted, _ = method(current.copy(), reference.copy())
            seconds.append(time.perf_counter() - started)
            flags.append(bool(drifted))
        out[name] = {"flags": flags, "seconds": seconds}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
