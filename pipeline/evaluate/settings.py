"""The evaluate stage's typed settings, read from `paths`, `tracking`, `seed` and `evaluate`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import require
from pipeline.errors import UserInputError
from pipeline.evaluate.baseline import BaselineSettings

REGISTERED_MODEL = "prompt-classifier"


@dataclass(frozen=True)
class EvaluateSettings:
    models_dir: Path
    records: Path
    reports: Path
    tracking_uri: str
    seed: int
    batch_size: int = 64  # inference batch; also the ONNX check's batch
    ece_bins: int = 15  # equal-width confidence bins for ECE and the calibration plot
    mistakes: int = 20  # most confident mistakes logged as an MLflow table
    registered_model: str = REGISTERED_MODEL
    register_every_run: bool = False  # a registry version per evaluate, not only per champion
    onnx: bool = True  # export to ONNX and check it against PyTorch
    lock_timeout_seconds: float = 600.0  # waiting for the writer lock to write the mistakes
    baseline: BaselineSettings = field(default_factory=BaselineSettings)

    @classmethod
    def from_cfg(cls, cfg: Any, root: Path) -> EvaluateSettings:
        """Read `paths`, `tracking`, `seed` and the optional `evaluate` section."""
        from omegaconf import OmegaConf

        from pipeline.tracking import TrackingSettings

        section = cfg.get("evaluate") or {}
        if not isinstance(section, Mapping):
            section = OmegaConf.to_container(section, resolve=True)
        known = {"batch_size", "ece_bins", "mistakes", "registered_model", "onnx", "baseline",
                 "lock_timeout_seconds", "register_every_run"}  # fmt: skip
        unknown = sorted(set(section) - known)
        if unknown:
            raise UserInputError(f"config key evaluate.{unknown[0]} does not exist")
        extra = {k: section[k] for k in known - {"baseline"} if k in section}
        return cls(
            models_dir=root / require(cfg, "paths.models"),
            records=root / require(cfg, "paths.records"),
            reports=root / require(cfg, "paths.reports"),
            tracking_uri=TrackingSettings.from_cfg(require(cfg, "tracking")).resolved_uri(root),
            seed=int(require(cfg, "seed")),
            baseline=BaselineSettings.from_cfg(section.get("baseline")),
            **extra,
        )

    @property
    def split_path(self) -> Path:
        """The train stage's split (id, rid, label, split) beside its checkpoint."""
        return self.models_dir / "split.parquet"
