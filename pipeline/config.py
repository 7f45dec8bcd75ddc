"""Configuration: Hydra composes `conf/`, DVC and the stages read the result, `params.yaml`.

`dvc exp run -S model=finetune` composes `conf/` into `params.yaml` before running the
stages; `dvc repro` does not, so `params.yaml` is committed and a test checks it equals the
composition of `conf/`. Stages read `params.yaml` (or a composed config in tests) and hand
each core a narrow, typed slice of it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from pipeline.errors import UserInputError

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
PARAMS_FILE = "params.yaml"


def compose(overrides: Sequence[str] = (), conf_dir: Path = CONF_DIR) -> DictConfig:
    """Compose `conf/config.yaml` with Hydra overrides such as `model=finetune`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        # version_base=None, as DVC composes it, so both give the same params.yaml.
        with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base=None):
            return hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserInputError(f"config: {exc}".splitlines()[0]) from exc


def load_params(path: str | Path = PARAMS_FILE, overrides: Sequence[str] = ()) -> DictConfig:
    """Read the composed parameters DVC tracks, optionally with dotted `key=value` overrides."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"{path}: not found; run from the repository root or `make params`")
    try:
        with path.open(encoding="utf-8") as fh:
            cfg = OmegaConf.create(yaml.safe_load(fh) or {})
    except yaml.YAMLError as exc:
        raise UserInputError(f"{path}: invalid YAML: {exc}".splitlines()[0]) from exc
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserInputError(f"override {item!r}: expected key=value")
        if OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
            raise UserInputError(f"override {item!r}: config key {key!r} does not exist")
        OmegaConf.update(cfg, key, yaml.safe_load(value), merge=False)
    return cfg


_MISSING = object()


def require(cfg: DictConfig, key: str) -> Any:
    """Return `cfg.key`, or fail with a message naming the missing key."""
    value = OmegaConf.select(cfg, key, default=_MISSING)
    if value is _MISSING:
        raise UserInputError(f"config key {key!r} is missing (see conf/ and params.yaml)")
    return value


def to_yaml(cfg: DictConfig) -> str:
    """Serialise a composed config byte for byte as `dvc exp run` writes `params.yaml`."""
    cfg = cfg.copy()
    OmegaConf.resolve(cfg)
    return OmegaConf.to_yaml(cfg)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.config", description="Compose conf/ and print or write it."
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=finetune")
    parser.add_argument("--write", metavar="FILE", help="write to FILE instead of stdout")
    args = parser.parse_args(argv)
    text = to_yaml(compose(args.overrides))
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
