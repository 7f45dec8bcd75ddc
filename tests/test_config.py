"""The committed params.yaml is exactly what `dvc exp run` would compose from conf/."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import CONF_DIR, compose, load_params, to_yaml
from pipeline.errors import UserInputError


def test_params_yaml_equals_composed_conf(repo_root: Path) -> None:
    committed = (repo_root / "params.yaml").read_text(encoding="utf-8")
    assert committed == to_yaml(compose()), "params.yaml is stale: run `make params`"


GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes(group: str) -> None:
    options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    assert options, f"conf/{group} has no options"
    for option in options:
        cfg = compose([f"{group}={option}"])
        assert group in cfg


def test_unknown_override_names_the_key(repo_root: Path) -> None:
    with pytest.raises(UserInputError, match="no_such_key"):
        load_params(repo_root / "params.yaml", ["no_such_key=1"])


def test_compose_rejects_unknown_group_option() -> None:
    with pytest.raises(UserInputError):
        compose(["model=does_not_exist"])
