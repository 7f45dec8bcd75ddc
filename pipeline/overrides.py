"""Command-line overrides of the composed config: `model=finetune` or `model.batch_size=32`.

A key that names a directory of `conf/` with no dot is a group choice: Hydra composes that
group's option from `conf/` and its section replaces params.yaml's, while every other
section stays as params.yaml has it. Any other key is a dotted value that must already
exist; a mistyped one is refused with the nearest known keys. Works on plain data (no
OmegaConf), so `pipeline search` starts without it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import UserInputError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
_SCALARS = (str, int, float, bool, list, dict, type(None))
_MISSING = object()


def apply_overrides(
    params: dict[str, Any], overrides: Sequence[str], conf_dir: Path
) -> dict[str, Any]:
    """`params` with group choices recomposed from `conf_dir`, then dotted values set."""
    parsed = [_parse(item) for item in overrides]
    groups = {key: value for key, value, _ in parsed if _is_group(key, conf_dir)}
    if groups:
        params = _recompose(params, groups, conf_dir)
    for key, value, item in parsed:
        if key not in groups:
            _set(params, key, _value(value, item), item)
    return params


def _parse(item: str) -> tuple[str, str, str]:
    key, sep, value = item.partition("=")
    if not sep or not _KEY.fullmatch(key):
        raise UserInputError(
            f"override {item!r}: expected KEY=VALUE with a dotted key, e.g. "
            "model.batch_size=32 or model=finetune (Hydra's +, ++ and ~ are not supported)"
        )
    return key, value, item


def _is_group(key: str, conf_dir: Path) -> bool:
    return "." not in key and (conf_dir / key).is_dir()


def _value(text: str, item: str) -> Any:
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError as exc:
        raise UserInputError(f"override {item!r}: invalid value: {exc}".splitlines()[0]) from exc
    # YAML reads 2024-06-01 as a date: the config holds it as the text it was given.
    return value if isinstance(value, _SCALARS) else text


def _recompose(params: dict[str, Any], groups: Mapping[str, str], conf_dir: Path) -> dict[str, Any]:
    """Each chosen group's section composed by Hydra; the other sections from `params`."""
    from omegaconf import OmegaConf

    from pipeline.config import compose

    for group, option in groups.items():
        options = sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))
        if option not in options:
            near = difflib.get_close_matches(option, options, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise UserInputError(
                f"override '{group}={option}': conf/{group} has no option {option!r}{hint} "
                f"(options: {', '.join(options)})"
            )
    chosen = [f"{group}={option}" for group, option in groups.items()]
    composed = OmegaConf.to_container(compose(chosen, conf_dir), resolve=True)
    default = OmegaConf.to_container(compose((), conf_dir), resolve=True)
    # A group whose option also changes other sections (a `_global_` package, an
    # interpolation) cannot be merged section by section: DVC recomposes everything.
    spilled = sorted(k for k in composed if k not in groups and composed[k] != default.get(k))
    if spilled:
        raise UserInputError(
            f"override {chosen[0]!r} also changes {', '.join(spilled)}: compose the whole "
            f"config with `dvc exp run -S {' -S '.join(chosen)}`"
        )
    return {**params, **{group: composed[group] for group in groups}}


def _set(params: dict[str, Any], key: str, value: Any, item: str) -> None:
    *parents, leaf = key.split(".")
    node: Any = params
    for part in parents:
        node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is _MISSING:
            break
    if not isinstance(node, dict) or leaf not in node:
        raise UserInputError(
            f"override {item!r}: config key {key!r} does not exist{_near(params, key)}"
        )
    if isinstance(node[leaf], dict) and not isinstance(value, dict):
        example = next(iter(node[leaf]), "KEY")
        raise UserInputError(
            f"override {item!r}: {key!r} is a section, not a value; set one of its keys "
            f"({key}.{example}=...), or a whole mapping ({key}='{{...}}')"
        )
    node[leaf] = value


def _near(params: Mapping[str, Any], key: str) -> str:
    """'; nearest: a.b, a.c': close spellings, else the keys beside the deepest known parent."""
    known = list(_keys(params))
    ancestors = {key.rsplit(".", n)[0] for n in range(1, key.count(".") + 1)}
    candidates = [k for k in known if k not in ancestors]
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
    if not close:
        parent = key
        while "." in parent and parent not in known:
            parent = parent.rpartition(".")[0]
        prefix = f"{parent}." if parent in known else ""
        close = [k for k in known if k.startswith(prefix) and "." not in k[len(prefix) :]]
    return f"; nearest: {', '.join(close[:8])}" if close else ""


def _keys(node: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for name, value in node.items():
        yield f"{prefix}{name}"
        if isinstance(value, Mapping):
            yield from _keys(value, f"{prefix}{name}.")
