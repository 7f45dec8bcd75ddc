"""The sweep's settings and search space (`conf/sweep/`), read into typed values.

The space is nested like the config it overrides, so `-S sweep.params.optimizer.lr.high=0.1`
edits it like any other key; a leaf is a range (`low`, `high`, optional `log`, `step`) or a
choice (`choices`). A sampled point becomes `-S` overrides of the train config, applied by
the same code as a command's own (pipeline/overrides.py): a key that does not exist is an
error before any training.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import yaml

from pipeline.errors import UserInputError

DIRECTIONS = ("maximize", "minimize")
RANGE_KEYS = frozenset({"low", "high", "log", "step"})


class Trial(Protocol):
    """The part of optuna.Trial a dimension asks (a protocol: this module imports no optuna)."""

    def suggest_float(self, name: str, low: float, high: float, **kw: Any) -> float: ...
    def suggest_int(self, name: str, low: int, high: int, **kw: Any) -> int: ...
    def suggest_categorical(self, name: str, choices: list[Any]) -> Any: ...


@dataclass(frozen=True)
class Dimension:
    """One swept config key: a float or integer range, or a choice among values."""

    key: str  # dotted config key, or a config group (model, optimizer, ...)
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    @classmethod
    def from_cfg(cls, key: str, spec: Mapping[str, Any]) -> Dimension:
        """A leaf of `sweep.params`; the error names the key and what is wrong."""
        where = f"sweep.params.{key}"
        if "choices" in spec:
            choices = spec["choices"]
            if set(spec) != {"choices"} or not isinstance(choices, list) or not choices:
                raise UserInputError(f"{where}: a choice is {{choices: [a, b, ...]}} alone")
            return cls(key, choices=tuple(choices))
        unknown = sorted(set(spec) - RANGE_KEYS)
        if unknown or "low" not in spec or "high" not in spec:
            raise UserInputError(
                f"{where}: expected {{low: L, high: H[, log: true][, step: S]}} or "
                f"{{choices: [...]}}, got keys {', '.join(sorted(spec))}"
            )
        low, high = spec["low"], spec["high"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
            raise UserInputError(f"{where}: low and high must be numbers, got {low!r}, {high!r}")
        if not low < high:
            raise UserInputError(f"{where}: low ({low}) must be below high ({high})")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise UserInputError(f"{where}: a log range needs low > 0, got {low}")
        return cls(key, low=low, high=high, log=log, step=spec.get("step"))

    @property
    def is_int(self) -> bool:
        """An integer range: both ends (and the step, if any) are integers."""
        ends = (self.low, self.high, self.step if self.step is not None else 1)
        return not self.choices and all(isinstance(v, int) for v in ends)

    def suggest(self, trial: Trial) -> Any:
        """This dimension's value for `trial`."""
        if self.choices:
            return trial.suggest_categorical(self.key, list(self.choices))
        kw: dict[str, Any] = {"log": self.log}
        if self.step is not None:
            kw["step"] = self.step
        if self.is_int:
            return trial.suggest_int(self.key, int(self.low), int(self.high), **kw)  # type: ignore[arg-type]
        return trial.suggest_float(self.key, float(self.low), float(self.high), **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SweepSettings:
    """`sweep` of the config: how many trials, what to optimise, and over which keys."""

    n_trials: int
    direction: str
    metric: str
    seed: int
    timeout_seconds: float | None
    space: tuple[Dimension, ...]

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> SweepSettings:
        """Read the `sweep` section (conf/sweep/<name>.yaml)."""
        missing = [k for k in ("n_trials", "direction", "metric", "params") if k not in cfg]
        if missing:
            raise UserInputError(f"config key 'sweep.{missing[0]}' is missing (conf/sweep/)")
        n_trials, direction = cfg["n_trials"], str(cfg["direction"])
        if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
            raise UserInputError(f"sweep.n_trials: expected a whole number >= 1, got {n_trials!r}")
        if direction not in DIRECTIONS:
            raise UserInputError(f"sweep.direction {direction!r}: expected maximize or minimize")
        space = tuple(Dimension.from_cfg(k, spec) for k, spec in _leaves(cfg["params"], ""))
        if not space:
            raise UserInputError("sweep.params: the search space is empty")
        timeout = cfg.get("timeout_seconds")
        return cls(
            n_trials=n_trials,
            direction=direction,
            metric=str(cfg["metric"]),
            seed=int(cfg.get("seed", 0)),
            timeout_seconds=None if timeout is None else float(timeout),
            space=space,
        )

    def corner(self) -> dict[str, Any]:
        """A point of the space (each low end, each first choice), to check its keys early."""
        return {d.key: d.choices[0] if d.choices else d.low for d in self.space}

    def overrides(self, point: Mapping[str, Any]) -> list[str]:
        """A sampled point as `KEY=VALUE` overrides (values as YAML, as `-S` reads them)."""
        return [f"{d.key}={_yaml(point[d.key])}" for d in self.space]


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(dotted key, spec) of every leaf: a mapping with `low`/`high` or `choices`."""
    if not isinstance(node, Mapping):
        raise UserInputError(f"sweep.params: expected a mapping of config keys, got {node!r}")
    for name, value in node.items():
        key = f"{prefix}{name}"
        if not isinstance(value, Mapping):
            raise UserInputError(
                f"sweep.params.{key}: expected {{low: L, high: H}} or {{choices: [...]}}, "
                f"got {value!r}"
            )
        if {"low", "high", "choices"} & set(value):
            yield key, value
        else:
            yield from _leaves(value, f"{key}.")


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
