"""ONNX export of a tiny token classifier, checked against PyTorch with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pipeline.evaluate import export  # noqa: E402


class TinyClassifier(torch.nn.Module):
    """Embedding + masked mean pooling + linear head: the shape of our real classifiers."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(50, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.unsqueeze(-1).float()
        pooled = (self.embed(ids) * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(torch.tanh(pooled))


def _inputs(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Whitespace 'tokenizer' padded to the longest text, like a real tokenizer batch."""
    tokens = [[sum(map(ord, w)) % 49 + 1 for w in t.split()] for t in texts]
    width = max(len(t) for t in tokens)
    ids = torch.tensor([t + [0] * (width - len(t)) for t in tokens])
    return ids, (ids != 0).long()


def test_export_matches_torch_on_other_batch_and_sequence_sizes(tmp_path: Path) -> None:
    model = TinyClassifier().eval()
    path = export.export_onnx(model, _inputs(["a b", "c d"]), tmp_path / "model.onnx")
    session = export.onnx_session(path)
    assert [i.name for i in session.get_inputs()] == ["input_0", "input_1"]
    texts = [" ".join(f"w{i}" for i in range(n)) for n in range(1, 12)]  # lengths 1..11
    batches = list(export.batched_inputs(_inputs, texts, batch_size=4))  # sizes 4, 4, 3
    diff = export.max_abs_difference(model, session, batches)
    assert diff < 1e-5
    got = session.run(
        ["logits"], {"input_0": batches[2][0].numpy(), "input_1": batches[2][1].numpy()}
    )
    assert got[0].shape == (3, 3)


def test_difference_is_reported_not_hidden(tmp_path: Path) -> None:
    model = TinyClassifier().eval()
    path = export.export_onnx(model, _inputs(["a b"]), tmp_path / "model.onnx")
    session = export.onnx_session(path)
    with torch.no_grad():
        model.head.bias += 0.5  # the PyTorch model drifts from the exported file
    diff = export.max_abs_difference(model, session, [_inputs(["x y z"])])
    assert diff == pytest.approx(0.5, abs=1e-5)
    assert np.isfinite(diff)


def test_embedding_head_keeps_a_fixed_width(tmp_path: Path) -> None:
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    path = export.export_onnx(
        head.eval(), (torch.randn(2, 16),), tmp_path / "head.onnx", sequence_axis=False
    )
    session = export.onnx_session(path)
    assert session.get_inputs()[0].shape[1] == 16  # only the batch axis is dynamic
    diff = export.max_abs_difference(head, session, [(torch.randn(5, 16),), (torch.randn(1, 16),)])
    assert diff < 1e-5
