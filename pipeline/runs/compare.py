"""`pipeline runs compare A B`: the params that differ, the metrics side by side and both
confusion matrices (the `eval/confusion_matrix.json` artifact every evaluated run has)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.runs.store import Store

CONFUSION = "eval/confusion_matrix.json"
CURVES = "epoch."  # per-epoch curves: their last value is not a summary of the run


def compare(store: Store, a: str, b: str) -> dict[str, Any]:
    """Two runs (ids or unique prefixes) side by side."""
    runs = [store.run(a), store.run(b)]
    params = [r.data.params for r in runs]
    metrics = [{k: v for k, v in r.data.metrics.items() if not k.startswith(CURVES)} for r in runs]
    differ = {
        key: [p.get(key) for p in params]
        for key in sorted(set(params[0]) | set(params[1]))
        if params[0].get(key) != params[1].get(key)
    }
    return {
        "runs": [_head(r) for r in runs],
        "params_differ": differ,
        "params_same": len(set(params[0]) | set(params[1])) - len(differ),
        "metrics": {
            k: [m.get(k) for m in metrics] for k in sorted(set(metrics[0]) | set(metrics[1]))
        },
        "confusion": [store.artifact_json(r.info.run_id, CONFUSION) for r in runs],
    }


def _head(run: Any) -> dict[str, Any]:
    tags = run.data.tags
    keys = ("model", "data_hash", "git_commit", "pipeline_run")
    return {"run_id": run.info.run_id, **{k: tags.get(k) for k in keys}}


def format_compare(result: Mapping[str, Any]) -> str:
    """The comparison for a terminal (at most 120 columns)."""
    a, b = result["runs"]
    lines = [f"A {a['run_id']}  {a['model']}  data {str(a['data_hash'])[:12]}",
             f"B {b['run_id']}  {b['model']}  data {str(b['data_hash'])[:12]}", ""]  # fmt: skip
    differ = result["params_differ"]
    lines.append(f"params that differ ({len(differ)}; {result['params_same']} the same):")
    lines += [
        f"  {k[:46]:<46}  {_text(va):<30.30}  {_text(vb):<30.30}" for k, (va, vb) in differ.items()
    ]
    lines += ["", f"  {'metric':<46}  {'A':>12}  {'B':>12}  {'B - A':>12}"]
    for key, (va, vb) in result["metrics"].items():
        delta = vb - va if va is not None and vb is not None else None
        lines.append(f"  {key[:46]:<46}  {_num(va)}  {_num(vb)}  {_num(delta, '+')}")
    for side, matrix in zip("AB", result["confusion"], strict=True):
        lines += ["", f"confusion matrix {side} (rows actual, columns predicted):"]
        lines += _matrix(matrix) if matrix else [f"  no {CONFUSION}: the run was not evaluated"]
    return "\n".join(line.rstrip() for line in lines)


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def _num(value: float | None, sign: str = "") -> str:
    if value is None:
        return f"{'-':>12}"
    if value and (abs(value) < 1e-3 or abs(value) >= 1e6):  # an ONNX difference, a count
        return f"{value:>{sign}12.3e}"
    return f"{value:>{sign}12.4f}"


def _matrix(data: Mapping[str, Any]) -> list[str]:
    """The matrix with labels cut to fit: a row label of 16, columns as wide as their counts."""
    labels: Sequence[str] = data["labels"]
    matrix: Sequence[Sequence[int]] = data["matrix"]
    width = max(5, *(len(str(v)) for row in matrix for v in row))
    header = " ".join(f"{str(label)[:width]:>{width}}" for label in labels)
    out = [f"  {'':16} {header}"]
    out += [f"  {str(label)[:16]:<16} " + " ".join(f"{v:>{width}}" for v in row)
            for label, row in zip(labels, matrix, strict=True)]  # fmt: skip
    return out
