"""Configuration: Hydra composes `conf/`, DVC and the stages read the result, `params.yaml`.

`dvc exp run -S model=finetune` composes `conf/` into `params.yaml` before running the
stages; `dvc repro` does not, so `params.yaml` is committed and a test checks it equals the
composition of `conf/`. Stages read `params.yaml` (or a composed config in tests) and hand
each core a narrow, typed slice of it.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pipeline.errors import UserInputError

if TYPE_CHECKING:
    from omegaconf import DictConfig

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


def read_params(path: str | Path) -> dict[str, Any]:
    """params.yaml as plain data, or an error naming the file."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"{path}: not found; run from the project root or pass --root")
    try:
        with path.open(encoding="utf-8") as fh:
            # libyaml's loader when built in: the same safe schema, ~10x faster (every
            # command's start-up reads this file; `pipeline predict` aims at < 2 s cold).
            data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError as exc:
        raise UserInputError(f"{path}: invalid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: expected a mapping of config sections")
    return data


def conf_dir_for(params_path: str | Path) -> Path:
    """The `conf/` beside a params file (a project's own groups), else the package's."""
    beside = Path(params_path).resolve().parent / "conf"
    return beside if (beside / "config.yaml").exists() else CONF_DIR


def load_plain(path: str | Path = PARAMS_FILE, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """params.yaml with overrides (pipeline/overrides.py), as plain data."""
    params = read_params(path)
    if overrides:
        from pipeline.overrides import apply_overrides

        params = apply_overrides(params, overrides, conf_dir_for(path))
    return params


def load_params(path: str | Path = PARAMS_FILE, overrides: Sequence[str] = ()) -> DictConfig:
    """params.yaml with overrides: a group choice (`model=finetune`) or a dotted value."""
    from omegaconf import OmegaConf

    return OmegaConf.create(load_plain(path, overrides))


def require(cfg: Mapping[str, Any], key: str) -> Any:
    """Return `cfg.key` of a DictConfig or plain mapping, or fail naming the missing key."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise UserInputError(f"config key {key!r} is missing (see conf/ and params.yaml)")
        node = node[part]
    return node


def to_yaml(cfg: DictConfig) -> str:
    """Serialise a composed config byte for byte as `dvc exp run` writes `params.yaml`."""
    from omegaconf import OmegaConf

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
