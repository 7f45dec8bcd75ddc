"""Every option of every config group builds the real objects it configures (the test of
lightning-hydra-template): `_target_` sections through Hydra, the others through the typed
settings the stages read. A new group or option is covered as soon as it exists."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from pipeline.config import CONF_DIR, compose
from pipeline.train.inputs import InputKind
from pipeline.train.tokenize import encode, pad_batch

TEXTS = ["add two numbers please", "fix my python function", "book a hotel by the beach"]
# Loading MiniLM (finetune) or Lightning (trainer, callbacks, logger) takes seconds.
SLOW = {("model", "finetune"), ("trainer", "*"), ("callbacks", "*"), ("logger", "*")}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def carries(settings: Any, section: Mapping[str, Any]) -> None:
    """Every scalar or list of `section` that names a field of `settings` arrives unchanged."""
    checked = 0
    for key, value in section.items():
        if hasattr(settings, key) and not isinstance(value, Mapping):
            got = getattr(settings, key)
            assert (list(got) if isinstance(got, tuple) else got) == value, key
            checked += 1
    assert checked, f"{type(settings).__name__} reads none of {sorted(section)}"


def batch_for(net: torch.nn.Module) -> tuple[torch.Tensor, ...]:
    if InputKind.of(net) is InputKind.EMBEDDING:
        return (torch.randn(len(TEXTS), 384),)
    if InputKind.of(net) is InputKind.EMBEDDING_LEXICAL:
        return (torch.rand(len(TEXTS), 384 + net.lexical.width),)
    return pad_batch(encode(TEXTS, max_length=32))


def build_model(cfg: Any, tmp_path: Path) -> None:
    net = instantiate(cfg.model.net, num_labels=3)
    assert net(*batch_for(net)).shape == (3, 3)


def build_optimizer(cfg: Any, tmp_path: Path) -> None:
    optimizer = instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(optimizer, torch.optim.Optimizer)
    assert optimizer.defaults["lr"] == cfg.optimizer.lr


def build_scheduler(cfg: Any, tmp_path: Path) -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    scheduler = instantiate(cfg.scheduler)(optimizer, total_steps=10)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert all(0.0 <= r <= 1.0 for r in rates) and max(rates) > 0


def build_trainer(cfg: Any, tmp_path: Path) -> None:
    from pipeline.train.settings import FitSettings

    settings = FitSettings.from_cfg(cfg, tmp_path)
    trainer = instantiate(settings.trainer, logger=False, enable_checkpointing=False)
    assert trainer.max_epochs == cfg.trainer.max_epochs


def build_callbacks(cfg: Any, tmp_path: Path) -> None:
    from pytorch_lightning.callbacks import Callback, ProgressBar

    from pipeline.train import fit
    from pipeline.train.settings import FitSettings

    sections = FitSettings.from_cfg(cfg, tmp_path).callbacks
    callbacks, checkpoint = fit.build_callbacks(sections, tmp_path, progress_bar=True)
    assert len(callbacks) == len(sections) and all(isinstance(c, Callback) for c in callbacks)
    assert checkpoint.dirpath == str(tmp_path) and checkpoint.monitor == fit.EPOCH_METRICS[-1]
    quiet, _ = fit.build_callbacks(sections, tmp_path, progress_bar=False)
    assert not any(isinstance(c, ProgressBar) for c in quiet)


def build_logger(cfg: Any, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from pipeline.train import fit
    from pipeline.train.settings import FitSettings

    cfg.tracking.uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = FitSettings.from_cfg(cfg, tmp_path)
    lineage = fit.Lineage(tmp_path / "records.parquet", "hash", "commit", "run-1")
    logger = fit.build_logger(settings, lineage)
    run = MlflowClient(settings.tracking_uri).get_run(logger.run_id)
    assert run.data.tags["pipeline_run"] == "run-1" and run.data.tags["stage"] == "train"
    assert run.info.run_name == f"train-{cfg.model.name}"


def build_split(cfg: Any, tmp_path: Path) -> None:
    from pipeline.train.split import SplitSettings

    carries(SplitSettings.from_cfg(cfg.split, seed=cfg.seed), cfg.split)


def build_data(cfg: Any, tmp_path: Path) -> None:
    from pipeline.dedup.shapes import ShapeReader
    from pipeline.stages.dedup import DedupSettings

    settings = DedupSettings.from_cfg(cfg)
    assert settings.data_path == cfg.data.path and settings.fields.default_source == cfg.data.name
    for field, column in cfg.data.fields.items():
        assert settings.fields.column_to_field[column] == field
    assert settings.format == cfg.data.format
    ShapeReader(settings.format, settings.fields)


def build_dedup(cfg: Any, tmp_path: Path) -> None:
    from pipeline.dedup.minhash import NearDupSettings
    from pipeline.dedup.pii import PiiSettings
    from pipeline.stages.dedup import DedupSettings

    settings = DedupSettings.from_cfg(cfg)
    assert list(settings.keep_policy) == list(cfg.dedup.keep_policy)
    carries(settings.validate, cfg.dedup.validate)
    carries(NearDupSettings.from_cfg(cfg.dedup.near), cfg.dedup.near)
    carries(PiiSettings.from_cfg(cfg.dedup.pii), cfg.dedup.pii)
    from pipeline.dedup.steps import build_steps

    steps = build_steps(cfg.dedup)  # each `_target_` step, built by Hydra
    assert list(steps) == [n for n in cfg.dedup.steps if cfg.dedup[n].get("enabled", True)]


def build_evaluate(cfg: Any, tmp_path: Path) -> None:
    from pipeline.stages.evaluate import EvaluateSettings

    settings = EvaluateSettings.from_cfg(cfg, tmp_path)
    carries(settings, cfg.evaluate)
    carries(settings.baseline, cfg.evaluate.baseline)


def build_embed(cfg: Any, tmp_path: Path) -> None:
    from pipeline.embed import EmbedSettings

    carries(EmbedSettings.from_cfg(cfg.embed), cfg.embed)


def build_index(cfg: Any, tmp_path: Path) -> None:
    import faiss

    from pipeline.index.factory import IndexSettings, resolve_factory

    settings = IndexSettings.from_cfg(cfg.index)
    carries(settings, cfg.index)
    # FAISS accepts the factory string; test_index_build.py trains and searches each one.
    factory = resolve_factory(settings, 10_000, dim=96)  # PQ's byte count follows the dim
    index = faiss.index_factory(96, factory, faiss.METRIC_INNER_PRODUCT)
    assert isinstance(index, faiss.Index) and index.d == 96


def build_search(cfg: Any, tmp_path: Path) -> None:
    from pipeline.search.api import SearchSettings

    carries(SearchSettings.from_cfg(cfg.search), cfg.search)


def build_serve(cfg: Any, tmp_path: Path) -> None:
    from pipeline.service.settings import ServeSettings

    carries(ServeSettings.from_cfg(cfg.serve), cfg.serve)
    carries(ServeSettings.from_cfg(cfg.serve).tls, cfg.serve.tls)


def build_sweep(cfg: Any, tmp_path: Path) -> None:
    from pipeline.config import load_plain
    from pipeline.sweep.space import SweepSettings

    section = OmegaConf.to_container(cfg.sweep, resolve=True)
    settings = SweepSettings.from_cfg(section)
    carries(settings, section)
    # Every key of the space exists in the config it overrides.
    params = tmp_path / "params.yaml"
    params.write_text(OmegaConf.to_yaml(cfg))
    load_plain(params, settings.overrides(settings.corner()))


def build_anomaly(cfg: Any, tmp_path: Path) -> None:
    from pipeline.anomaly.settings import AnomalySettings

    section = OmegaConf.to_container(cfg.anomaly, resolve=True)
    settings = AnomalySettings.from_cfg(section, seed=cfg.seed)
    carries(settings, section)
    net = instantiate(cfg.anomaly.net)
    batch = torch.randn(3, cfg.embed.dim)
    assert net(batch).shape == batch.shape  # it reconstructs the embedding it reads


def build_labels(cfg: Any, tmp_path: Path) -> None:
    from pipeline.labels.issues import LabelSettings

    carries(LabelSettings.from_cfg(cfg.labels), cfg.labels)


def build_predict(cfg: Any, tmp_path: Path) -> None:
    from pipeline.predict.settings import PredictSettings

    settings = PredictSettings.from_cfg(cfg, tmp_path)
    carries(settings, {k: v for k, v in cfg.predict.items() if k != "cache_dir"})
    assert settings.cache_dir == tmp_path / cfg.predict.cache_dir


def build_monitor(cfg: Any, tmp_path: Path) -> None:
    from pipeline.monitor.settings import MonitorSettings

    carries(MonitorSettings.from_cfg(cfg.monitor), cfg.monitor)


def build_retrieval(cfg: Any, tmp_path: Path) -> None:
    from pipeline.retrieval.evaluate import variants_from_cfg

    variants = variants_from_cfg(cfg.retrieval.variants)
    assert len(variants) == len(cfg.retrieval.variants)
    assert cfg.retrieval.k >= 1 and 0 <= cfg.retrieval.relevant_grade <= 3


def build_rag(cfg: Any, tmp_path: Path) -> None:
    from pipeline.rag import RagSettings
    from pipeline.rag.tokens import token_counter

    section = OmegaConf.to_container(cfg.rag, resolve=True)
    settings = RagSettings.from_cfg(section)
    carries(settings, section)
    carries(settings.generator, section["generator"])
    assert token_counter(settings.tokenizer).count("how do I reset my password") > 0


def build_tracking(cfg: Any, tmp_path: Path) -> None:
    import os
    from unittest import mock

    from pipeline.tracking import TrackingSettings

    settings = TrackingSettings.from_cfg(cfg.tracking)
    carries(settings, cfg.tracking)
    with mock.patch.dict(os.environ, {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}):
        uri = settings.resolved_uri(tmp_path)  # tracking=server reads it from the environment
    assert uri.startswith((f"sqlite:///{tmp_path}", "http://127.0.0.1:5000")), uri


BUILDERS: dict[str, Callable[[Any, Path], None]] = {
    "model": build_model,
    "optimizer": build_optimizer,
    "scheduler": build_scheduler,
    "trainer": build_trainer,
    "callbacks": build_callbacks,
    "logger": build_logger,
    "split": build_split,
    "data": build_data,
    "dedup": build_dedup,
    "evaluate": build_evaluate,
    "embed": build_embed,
    "index": build_index,
    "search": build_search,
    "serve": build_serve,
    "sweep": build_sweep,
    "anomaly": build_anomaly,
    "labels": build_labels,
    "predict": build_predict,
    "monitor": build_monitor,
    "retrieval": build_retrieval,
    "rag": build_rag,
    "tracking": build_tracking,
}
GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())


def cases() -> list[Any]:
    return [
        pytest.param(
            group,
            name,
            marks=[pytest.mark.slow] if {(group, name), (group, "*")} & SLOW else [],
            id=f"{group}={name}",
        )
        for group in GROUPS
        for name in options(group)
    ]


def test_every_group_has_a_builder_and_options() -> None:
    assert sorted(BUILDERS) == GROUPS, "a new conf/ group needs a builder here"
    assert options("model") == [
        "bigru",
        "finetune",
        "hybrid",
        "linear_probe",
        "textcnn",
        "transformer",
    ]
    assert {"cpu", "ddp"} <= set(options("trainer"))
    assert all(options(group) for group in GROUPS)


@pytest.mark.parametrize(("group", "name"), cases())
def test_every_option_of_every_group_builds(group: str, name: str, tmp_path: Path) -> None:
    cfg = compose([f"{group}={name}"])
    OmegaConf.set_readonly(cfg, False)
    BUILDERS[group](cfg, tmp_path)
