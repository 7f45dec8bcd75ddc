"""Every model takes an optimizer step, a Lightning step and exports to ONNX (every option of
every group builds in tests/test_config_groups.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from pipeline.config import CONF_DIR, compose
from pipeline.train.inputs import Collate, InputKind, model_inputs
from pipeline.train.tokenize import encode, pad_batch

TEXTS = ["add two numbers please", "fix my python function", "book a hotel by the beach"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def cases(group: str) -> list:
    """Options of `group`; loading MiniLM (finetune) takes seconds."""
    return [
        pytest.param(group, name, marks=[pytest.mark.slow] if name == "finetune" else [])
        for name in options(group)
    ]


def hybrid_features(net: torch.nn.Module, texts: list[str]) -> Any:
    """[random sentence vector | the texts' hashed n-gram counts], as the hybrid reads them."""
    import scipy.sparse as sp

    from pipeline.train.lexical import hashed_counts

    vectors = np.random.default_rng(0).normal(size=(len(texts), 384)).astype(np.float32)
    counts = hashed_counts(texts, net.lexical)
    return sp.hstack([sp.csr_matrix(vectors), counts], format="csr", dtype=np.float32)


def batch_for(net: torch.nn.Module, texts: list[str] = TEXTS) -> tuple[torch.Tensor, ...]:
    if InputKind.of(net) is InputKind.EMBEDDING:
        return (torch.randn(len(texts), 384),)
    if InputKind.of(net) is InputKind.EMBEDDING_LEXICAL:
        return (torch.from_numpy(hybrid_features(net, texts).toarray()),)
    return pad_batch(encode(texts, max_length=32))


@pytest.mark.parametrize(("group", "name"), cases("model"))
def test_each_model_takes_an_optimizer_step(group: str, name: str) -> None:
    cfg = compose([f"model={name}"])
    torch.manual_seed(0)
    net = instantiate(cfg.model.net, num_labels=3)
    inputs, labels = batch_for(net), torch.tensor([0, 1, 2])
    params = (
        net.param_groups(1e-3)
        if hasattr(net, "param_groups")
        else [p for p in net.parameters() if p.requires_grad]
    )
    optimizer = instantiate(cfg.optimizer)(params)
    trainable = [p for p in net.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    loss = torch.nn.functional.cross_entropy(net(*inputs), labels)
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainable, strict=True))
    # The pad-derived mask gives the same logits as the explicit one (MLflow passes ids only).
    net.eval()
    if InputKind.of(net) is InputKind.TOKENS:
        ids, mask = inputs
        assert torch.allclose(net(ids, mask), net(ids), atol=1e-5)


@pytest.mark.slow
def test_finetune_freezes_lower_layers_and_decays_rates() -> None:
    cfg = compose(["model=finetune", "model.net.unfreeze_layers=2"])
    net = instantiate(cfg.model.net, num_labels=4)
    layers = net.encoder.encoder.layer
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert not any(p.requires_grad for p in net.encoder.embeddings.parameters())
    assert all(p.requires_grad for p in layers[-1].parameters())
    rates = [g["lr"] for g in net.param_groups(1e-4)]
    assert rates == pytest.approx([1e-4, 1e-4 * 0.8, 1e-4 * 0.8**2])


def test_balanced_class_weights() -> None:
    from pipeline.train.data import balanced_class_weights

    weights = balanced_class_weights(np.array([0, 0, 0, 1]), 3)
    assert weights.tolist() == pytest.approx([4 / 6, 2.0, 0.0])


@pytest.mark.slow
@pytest.mark.parametrize("name", options("model"))
def test_each_model_trains_one_lightning_step(name: str, tmp_path: Path) -> None:
    from pipeline.train.module import ClassifierDataModule, ClassifierModule, RowsDataset
    from pipeline.train.settings import FitSettings

    cfg = compose([f"model={name}"])
    net = instantiate(cfg.model.net, num_labels=3)
    inputs = model_inputs(InputKind.of(net), max_length=32, lexical=getattr(net, "lexical", None))
    if inputs.kind is InputKind.EMBEDDING:
        features = list(np.random.default_rng(0).normal(size=(6, 384)).astype(np.float32))
    elif inputs.kind is InputKind.EMBEDDING_LEXICAL:
        features = hybrid_features(net, TEXTS * 2)
        net.fit_inputs(features)
    else:
        features = inputs.features(TEXTS * 2)
    rows = RowsDataset(features, np.array([0, 1, 2, 0, 1, 2]))
    data = ClassifierDataModule(rows, rows, Collate(inputs), batch_size=6)  # one batch: val runs
    module = ClassifierModule(
        net, 3, instantiate(cfg.optimizer), instantiate(cfg.scheduler), lr=cfg.model.lr
    )
    trainer = instantiate(
        FitSettings.from_cfg(cfg, tmp_path).trainer,
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 1
    assert "val_macro_f1" in trainer.callback_metrics


@pytest.mark.slow
@pytest.mark.parametrize("name", options("model"))
def test_each_model_exports_to_onnx_with_free_axes(name: str, tmp_path: Path) -> None:
    """The evaluate stage exports `forward(*export_inputs)`; padding and batch size vary."""
    export = pytest.importorskip("pipeline.evaluate.export")
    cfg = compose([f"model={name}"])
    net = instantiate(cfg.model.net, num_labels=3).eval()
    if InputKind.of(net) is InputKind.EMBEDDING:
        first, second = (torch.randn(2, 384),), (torch.randn(5, 384),)
    elif InputKind.of(net) is InputKind.EMBEDDING_LEXICAL:
        net.fit_inputs(hybrid_features(net, TEXTS))
        first, second = batch_for(net, TEXTS[:2]), batch_for(net, [*TEXTS, "much longer"])
    else:
        first = pad_batch(encode(TEXTS[:2], max_length=32))
        second = pad_batch(encode([*TEXTS, "a much longer text than any of the others here"], 32))
    path = export.export_onnx(net, first, tmp_path / f"{name}.onnx")
    session = export.onnx_session(path, threads=1)
    assert export.max_abs_difference(net, session, [first, second]) < 1e-4


@pytest.mark.slow  # imports Lightning
def test_unknown_model_key_names_the_section() -> None:
    from pipeline.errors import UserInputError
    from pipeline.train.fit import build

    cfg = compose(["model=textcnn", "+model.net.colour=red"])
    with pytest.raises(UserInputError, match=r"config model.net: .*unexpected keyword.*colour"):
        build("model.net", cfg.model.net, num_labels=3)


def test_hybrid_lexical_part_starts_at_the_logistic_regression() -> None:
    """`lexical_init: logistic`: before any step, the linear part predicts as scikit-learn's
    logistic regression on the same TF-IDF rows; with two classes too (one coef row)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import normalize

    texts = [*TEXTS, "add three numbers", "python function bug", "hotel near the beach"]
    for labels in (np.array([0, 1, 2, 0, 1, 2]), np.array([0, 1, 1, 0, 1, 1])):
        cfg = compose(["model=hybrid"])
        assert cfg.model.net.lexical_init == "logistic"  # the default
        net = instantiate(cfg.model.net, num_labels=3).eval()
        features = hybrid_features(net, texts)
        net.fit_inputs(features, labels)
        counts = features[:, 384:]
        tfidf = normalize(counts.multiply(net.idf.numpy()).tocsr())
        lr = LogisticRegression(C=10.0, max_iter=1000, class_weight="balanced").fit(tfidf, labels)
        with torch.no_grad():
            dense = torch.from_numpy(tfidf.toarray().astype(np.float32))
            ours = net.lexical_head(dense).numpy()[:, lr.classes_]
        if len(lr.classes_) == 2:
            ours = ours[:, 1:] - ours[:, :1]  # scikit-learn's one decision value
        np.testing.assert_allclose(ours.ravel(), lr.decision_function(tfidf).ravel(), atol=1e-4)
    zero = instantiate(compose(["model=hybrid", "model.net.lexical_init=zeros"]).model.net, 3)
    zero.fit_inputs(hybrid_features(zero, texts), labels)
    assert not zero.lexical_head.weight.any()
