"""Typed settings of the monitor, read from `cfg.monitor` (conf/monitor/default.yaml)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from pipeline.errors import UserInputError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, name: str = "window") -> timedelta:
    """`90s`, `15m`, `1h`, `2d` as a timedelta; UserInputError naming `name` otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise UserInputError(f"{name} {text!r}: expected a positive duration like 30m, 1h or 1d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class MonitorSettings:
    """conf/monitor/default.yaml; each field's rationale is there."""

    window: str = "1h"
    min_predictions: int = 50
    label_psi_max: float = 0.25
    embedding_p_value: float = 0.01
    permutations: int = 200
    sample_size: int = 300
    reference_size: int = 1000
    projection_dims: int = 64
    confidence_min: float = 0.0
    accuracy_min: float = 0.0
    log_text: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        parse_duration(self.window, "monitor.window")
        for name in ("min_predictions", "permutations", "sample_size", "reference_size"):
            if int(getattr(self, name)) < 1:
                raise UserInputError(f"monitor.{name} {getattr(self, name)!r}: expected >= 1")
        if not 1 <= self.projection_dims <= 384:
            raise UserInputError(
                f"monitor.projection_dims {self.projection_dims!r}: expected 1 to 384"
            )
        if not 0 < self.embedding_p_value < 1:
            raise UserInputError(
                f"monitor.embedding_p_value {self.embedding_p_value!r}: expected in (0, 1)"
            )

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> MonitorSettings:
        """From `cfg.monitor`; an unknown key is a typo the user wants to hear about."""
        cfg = dict(cfg or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise UserInputError(f"monitor.{unknown[0]}: unknown key (known: {sorted(names)})")
        return cls(**cfg)
