"""The config flags every command shares (`--root`, `--params`, `-S/--set`) and how they are read.

Registration stays light: nothing here imports OmegaConf or Hydra until a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

SET_HELP = (
    "override the config for this run (repeatable): a value, -S model.batch_size=32, or a "
    "config group option recomposed from conf/, -S model=finetune; an unknown key is an error"
)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Add `--root`, `--params` and `-S/--set KEY=VALUE` to a command that reads the config."""
    parser.add_argument("--root", default=".", help="project root (default: .)")
    parser.add_argument(
        "--params",
        default="params.yaml",
        help="the composed config, relative to --root (default: params.yaml)",
    )
    parser.add_argument(
        "-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help=SET_HELP,
    )  # fmt: skip


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (`--top`, `--limit`)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of at least 1")
    return value


def params_path(args: argparse.Namespace) -> Path:
    """The params file the command reads: `--params` under `--root`."""
    return Path(args.root) / args.params


def load_config(args: argparse.Namespace, *, plain: bool = False) -> Any:
    """The composed config with the command's overrides: a DictConfig, or a dict if `plain`."""
    from pipeline.config import load_params, load_plain

    load = load_plain if plain else load_params
    return load(params_path(args), args.overrides)


def config_path(args: argparse.Namespace, key: str, default: str) -> Path:
    """A path of the config (e.g. `paths.store`) under `--root`; `default` without params.yaml."""
    from pipeline.config import require

    if not args.overrides and not params_path(args).exists():
        return Path(args.root) / default
    return Path(args.root) / str(require(load_config(args, plain=True), key))


def service_config(args: argparse.Namespace) -> Any:
    """The service's settings and paths (pipeline/api/state.py) for a command's flags."""
    from pipeline.api.run import service_config as load

    return load(args.root, params_path(args), args.overrides)
