"""What the anomaly stage reads from the composed config, as typed values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import UserInputError


@dataclass(frozen=True)
class AnomalySettings:
    """conf/anomaly/<name>.yaml: the network (Hydra `_target_`) and how it is fitted."""

    name: str
    net: Mapping[str, Any]  # `_target_` + constructor arguments
    epochs: int = 20  # the defaults of conf/anomaly/autoencoder.yaml
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    threads: int = 1  # torch intra-op threads
    seed: int = 42  # the top-level `seed`

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], seed: int) -> AnomalySettings:
        """Read the `anomaly` section; a missing or bad key is named in the error."""
        for key in ("name", "net"):
            if key not in cfg:
                raise UserInputError(f"config key 'anomaly.{key}' is missing")
        if "_target_" not in cfg["net"]:
            raise UserInputError("config key 'anomaly.net._target_' is missing")
        values: dict[str, Any] = {}
        for key, kind, least in _NUMBERS:
            if key in cfg:
                values[key] = _number(key, cfg[key], kind, least)
        return cls(name=str(cfg["name"]), net=cfg["net"], seed=int(seed), **values)


# (key, type, smallest allowed value) of the numeric settings.
_NUMBERS = (
    ("epochs", int, 1),
    ("batch_size", int, 1),
    ("threads", int, 1),
    ("lr", float, 0),
    ("weight_decay", float, 0),
)


def _number(key: str, value: Any, kind: type, least: float) -> Any:
    """`value` as `kind`, at least `least`; otherwise an error naming `anomaly.<key>`."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise UserInputError(f"anomaly.{key}: {value!r} is not a number") from None
    fraction = kind is int and isinstance(value, float) and not value.is_integer()
    if isinstance(value, bool) or fraction or number < least:
        raise UserInputError(f"anomaly.{key}: must be a {kind.__name__} >= {least}, got {value!r}")
    return number
