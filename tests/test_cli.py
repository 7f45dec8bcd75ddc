"""Every command answers --help, and start-up stays light (no torch, no Lightning)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from pipeline.cli import build_parser


def _commands() -> list[list[str]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    out = []
    for name, child in sub.choices.items():
        out.append([name])
        for action in child._actions:
            if isinstance(action, argparse._SubParsersAction):
                out.extend([name, inner] for inner in action.choices)
    return out


@pytest.mark.parametrize("argv", _commands(), ids=" ".join)
def test_help(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*argv, "--help"])
    assert exc.value.code == 0


def test_start_up_imports_nothing_heavy() -> None:
    code = (
        "import sys; from pipeline.cli import build_parser; build_parser(); "
        "heavy = ('torch', 'pytorch_lightning', 'faiss', 'mlflow', 'sentence_transformers'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_no_command_prints_help_and_exits_2() -> None:
    out = subprocess.run([sys.executable, "-m", "pipeline"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "usage" in out.stdout.lower()
