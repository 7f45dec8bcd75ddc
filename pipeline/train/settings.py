"""What one fit reads from the composed config, as typed values: the train core never sees
the whole config. Sections Hydra builds (`_target_`) stay plain mappings until `build`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import require
from pipeline.errors import UserInputError
from pipeline.tracking import TrackingSettings

BALANCE = ("class_weights", "sampler", "none")
TRAINER_EXTRAS = ("threads",)  # keys of conf/trainer that are not Trainer arguments


@dataclass(frozen=True)
class ModelSettings:
    """conf/model/<name>.yaml: the network and how batches of it are fed."""

    name: str
    net: Mapping[str, Any]  # `_target_` + constructor arguments; `num_labels` is added
    batch_size: int = 64
    balance: str = "class_weights"  # class_weights | sampler | none: label imbalance
    lr: float | None = None  # None: the optimizer's own rate
    max_length: int = 128  # tokens kept per text (token models)

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> ModelSettings:
        balance = str(cfg.get("balance", "class_weights"))
        if balance not in BALANCE:
            raise UserInputError(f"model.balance {balance!r}: expected one of {', '.join(BALANCE)}")
        lr = cfg.get("lr")
        return cls(
            name=str(cfg["name"]),
            net=cfg["net"],
            batch_size=int(cfg.get("batch_size", 64)),
            balance=balance,
            lr=None if lr is None else float(lr),
            max_length=int(cfg.get("max_length", 128)),
        )


@dataclass(frozen=True)
class FitSettings:
    """One fit: the model, its optimizer and schedule, the Trainer, callbacks and logger."""

    model: ModelSettings
    optimizer: Mapping[str, Any]  # `_partial_`: the module passes the parameters
    scheduler: Mapping[str, Any] | None  # `_partial_`, or None for a constant rate
    trainer: Mapping[str, Any]  # pytorch_lightning.Trainer arguments
    callbacks: Mapping[str, Mapping[str, Any]]  # name -> callback; `checkpoint` is required
    logger: Mapping[str, Any]  # an MLFlowLogger: lineage is logged into its run
    tracking: TrackingSettings
    tracking_uri: str  # resolved against the project root
    artifact_location: str | None
    embed: Mapping[str, Any]  # conf/embed, for networks that read sentence vectors
    embed_cache: Path
    seed: int = 42
    threads: int | None = None  # torch intra-op threads; None leaves torch's default

    @classmethod
    def from_cfg(cls, cfg: Any, root: Path) -> FitSettings:
        """Read `model`, `optimizer`, `scheduler`, `trainer`, `callbacks`, `logger`, `tracking`,
        `embed`, `paths.embed_cache` and `seed` of the composed config."""
        from omegaconf import OmegaConf

        plain = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg

        def section(key: str) -> dict[str, Any]:
            node = require(plain, key)
            if not isinstance(node, Mapping):
                raise UserInputError(f"config {key}: expected a section, got {node!r}")
            return dict(node)

        trainer, scheduler = section("trainer"), section("scheduler")
        tracking = TrackingSettings.from_cfg(section("tracking"))
        threads = trainer.get("threads")
        return cls(
            model=ModelSettings.from_cfg(section("model")),
            optimizer=section("optimizer"),
            scheduler=scheduler if scheduler.get("_target_") else None,
            trainer={k: v for k, v in trainer.items() if k not in TRAINER_EXTRAS},
            callbacks=section("callbacks"),
            logger=section("logger"),
            tracking=tracking,
            tracking_uri=tracking.resolved_uri(root),
            artifact_location=tracking.artifact_location(root),
            embed=section("embed"),
            embed_cache=root / str(require(plain, "paths.embed_cache")),
            seed=int(require(plain, "seed")),
            threads=int(threads) if threads else None,
        )
