"""The committed params.yaml is what `dvc exp run` composes from conf/; every command takes the
same overrides, recomposes config groups through Hydra and refuses unknown keys alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.config import CONF_DIR, compose, load_params, to_yaml
from pipeline.errors import UserInputError
from pipeline.overrides import apply_overrides

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())
SECTIONS = sorted(k for k, v in yaml.safe_load(to_yaml(compose())).items() if isinstance(v, dict))


def test_params_yaml_equals_composed_conf(repo_root: Path) -> None:
    committed = (repo_root / "params.yaml").read_text(encoding="utf-8")
    assert committed == to_yaml(compose()), "params.yaml is stale: run `make params`"


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_composes_into_its_own_section(group: str) -> None:
    options = sorted(CONF_DIR.joinpath(group).glob("*.yaml"))
    assert options, f"conf/{group} has no options"
    default = yaml.safe_load(to_yaml(compose()))
    for path in options:
        composed = yaml.safe_load(to_yaml(compose([f"{group}={path.stem}"])))
        assert composed[group] == yaml.safe_load(path.read_text(encoding="utf-8")), path
        # Choosing an option changes its own section only: the CLI relies on it.
        assert {k: v for k, v in composed.items() if k != group} == {
            k: v for k, v in default.items() if k != group
        }, path


def test_compose_rejects_unknown_group_option() -> None:
    with pytest.raises(UserInputError, match="model/does_not_exist"):
        compose(["model=does_not_exist"])


@pytest.fixture
def params(tmp_path: Path) -> Path:
    """params.yaml as composed, with one value edited (as `dvc exp run -S` leaves it)."""
    data = yaml.safe_load(to_yaml(compose()))
    data["dedup"]["near"]["threshold"] = 0.9
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_group_override_recomposes_its_section_and_keeps_the_others(params: Path) -> None:
    cfg = load_params(params, ["model=finetune", "model.batch_size=8", "trainer=ddp"])
    finetune = compose(["model=finetune"]).model
    assert cfg.model.name == "finetune" and cfg.model.net == finetune.net
    assert cfg.model.batch_size == 8  # values apply after the group, whatever their order
    assert cfg.trainer.devices == 2 and cfg.trainer.strategy.process_group_backend == "gloo"
    assert cfg.dedup.near.threshold == 0.9  # params.yaml's own values survive
    assert load_params(params, ["model.batch_size=8", "model=finetune"]).model.batch_size == 8


def test_the_composed_config_reaches_the_train_settings(params: Path) -> None:
    from pipeline.train.settings import FitSettings

    # `pipeline train model=finetune` used to set cfg.model to the string 'finetune'.
    settings = FitSettings.from_cfg(load_params(params, ["model=finetune"]), params.parent)
    assert settings.model.name == "finetune" and settings.model.lr == pytest.approx(5e-5)
    assert settings.callbacks["checkpoint"]["monitor"] == "val_macro_f1"


def test_unknown_group_option_names_the_options(params: Path) -> None:
    message = r"no option 'finetun'; did you mean 'finetune'.*bigru"
    with pytest.raises(UserInputError, match=message):
        load_params(params, ["model=finetun"])


@pytest.mark.parametrize("section", SECTIONS)
def test_unknown_key_is_refused_alike_in_every_section(params: Path, section: str) -> None:
    data = yaml.safe_load(params.read_text())[section]
    known = set(data) | {f"{k}.{sub}" for k, v in data.items() if isinstance(v, dict) for sub in v}
    key = f"{section}.no_such_key"
    with pytest.raises(UserInputError, match=rf"config key '{key}' does not exist; nearest: ") as e:
        load_params(params, [f"{key}=1"])
    named = str(e.value).split("nearest: ")[1].split(", ")
    assert named and set(named) <= {f"{section}.{k}" for k in known}


def test_misspelt_key_names_the_nearest_key(params: Path) -> None:
    with pytest.raises(UserInputError, match=r"nearest: dedup\.near\.threshold"):
        load_params(params, ["dedup.near.threshhold=0.9"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tracking=foo", r"conf/tracking has no option 'foo'.*options: server, sqlite"),
        ("erase=x", r"'erase' is a section, not a value"),
        ("paths=x", r"'paths' is a section, not a value"),
        ("+seed=1", r"expected KEY=VALUE"),
        ("~seed", r"expected KEY=VALUE"),
        ("seed", r"expected KEY=VALUE"),
        ("seed=[1", r"override 'seed=\[1': invalid value"),
    ],
)
def test_malformed_overrides_are_refused(params: Path, override: str, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        load_params(params, [override])


def test_override_values_are_yaml(params: Path) -> None:
    cfg = load_params(
        params,
        [
            "split.group_by=[user_id]",
            "split.holdout_groups={column: source, values: [a]}",
            "data.fields={label: task}",
            "tracking.experiment=2024-06-01",  # a date to YAML; kept as the text given
            "search.alpha=0.5",
            "split.near_dup_threshold=null",
        ],
    )
    assert list(cfg.split.group_by) == ["user_id"]
    assert list(cfg.split.holdout_groups["values"]) == ["a"]
    assert dict(cfg.data.fields) == {"label": "task"}
    assert cfg.tracking.experiment == "2024-06-01" and cfg.search.alpha == 0.5
    assert cfg.split.near_dup_threshold is None


def test_group_option_that_changes_other_sections_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "a").mkdir(parents=True)
    (conf / "config.yaml").write_text("defaults:\n  - _self_\n  - a: one\nx: 1\n")
    (conf / "a" / "one.yaml").write_text("v: 1\n")
    (conf / "a" / "two.yaml").write_text("# @package _global_\na:\n  v: 2\nx: 2\n")
    params = {"a": {"v": 1}, "x": 1}
    with pytest.raises(UserInputError, match=r"also changes x: .*`dvc exp run -S a=two`"):
        apply_overrides(params, ["a=two"], conf)


# Every command that reads the config, with the arguments it needs besides the config.
COMMANDS = [
    ["dedup"],
    ["records", "stats"],
    ["records", "show", "r1"],
    ["train"],
    ["evaluate"],
    ["index", "build"],
    ["index", "verify"],
    ["search", "anything"],
    ["serve"],
    ["keys", "create", "--role", "reader"],
    ["keys", "list"],
    ["keys", "revoke", "k1"],
    ["feedback", "r1", "--up", "--key", "nope"],
    ["stats", "usage"],
    ["stats", "feedback"],
    ["erase", "--user-id", "u1"],
    ["summary"],
    ["anomaly"],
    ["records", "anomalies"],
    ["retrieval"],
    ["feedback", "r1", "--grade", "2", "--query", "q1", "--key", "nope"],
]


@pytest.fixture
def project(tmp_path: Path, repo_root: Path) -> Path:
    shutil.copyfile(repo_root / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_takes_the_same_overrides(
    project: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*command, "--root", str(project)]
    assert main([*argv, "-S", "dedup.near.threshhold=0.9"]) == 2
    assert "nearest: dedup.near.threshold" in capsys.readouterr().err
    assert main([*argv, "--set", "model=finetun"]) == 2
    assert "did you mean 'finetune'" in capsys.readouterr().err


def test_a_bare_override_is_refused_with_the_flag_to_use(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "model=finetune", "trainer.max_epochs=1"])
    assert exit_.value.code == 2
    assert "-S model=finetune -S trainer.max_epochs=1" in capsys.readouterr().err
