"""Each DVC stage lists exactly the code it runs: every pipeline module the stage can import
is covered by one of its `deps` in dvc.yaml, and every file under a code dep is one the
stage imports, so a change re-runs the stages it can affect and no other.

The imports are read from the source (module-level and inside functions, since the stages
import heavy modules lazily), starting from the stage module (`pipeline/stages/<cmd>.py`)
and the `_target_` classes of the stage's params sections, which Hydra imports by name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

# Imports the walk does not follow, each with why it cannot change the stage's outputs.
NOT_FOLLOWED = {
    # The writer lock finishes an erasure another command left half done (store, index,
    # service DB) before the stage starts; the stage's outputs come from its own inputs.
    ("pipeline.service.writer", "pipeline.service.erasure"),
}
# Every stage reads params.yaml (and `-S` overrides) through pipeline/config.py.
COMMON_ROOTS = ["pipeline.config"]
# Params sections whose `_target_` classes a stage runs without listing the section:
# evaluate rebuilds the network its checkpoint (models/) names, chosen by `model` in train.
TARGETS_FROM = {"evaluate": ["model"]}
# Files under a stage's code deps that the stage does not import, with why they stay.
NOT_IMPORTED_OK: dict[str, set[str]] = {}


def module_file(name: str) -> Path | None:
    base = REPO / Path(*name.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _runtime_nodes(tree: ast.AST, functions: bool) -> Iterator[ast.AST]:
    """The nodes that can run: not under `if TYPE_CHECKING:`, and not inside a function
    unless `functions` (a package reached only as the parent of a module runs its top level)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            nodes: list[ast.AST] = list(node.orelse)
        elif not functions and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        else:
            nodes = [node]
        for part in nodes:
            yield part
            yield from _runtime_nodes(part, functions)


def imported_names(name: str, path: Path, functions: bool = True) -> Iterator[str]:
    """Modules (or module.attribute) that the file at `path` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in _runtime_nodes(tree, functions):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def closure(roots: list[str]) -> set[str]:
    """Repository-relative files of the pipeline modules reachable from `roots`. A module
    imported by name may run any of its functions, so their imports count; a package
    reached only as a module's parent runs its top level only."""
    seen: dict[str, bool] = {}  # module -> whether its functions' imports were followed
    todo = [(None, root, True) for root in roots]
    while todo:
        parent, name, full = todo.pop()
        if not name.startswith("pipeline") or (parent, name) in NOT_FOLLOWED:
            continue
        path = module_file(name)
        if path is None or seen.get(name, False) or (name in seen and not full):
            continue
        seen[name] = full
        parts = name.split(".")
        todo += [(name, ".".join(parts[:i]), False) for i in range(1, len(parts))]
        todo += [(name, child, True) for child in imported_names(name, path, full)]
    return {module_file(name).relative_to(REPO).as_posix() for name in seen}  # type: ignore[union-attr]


def targets(node: object) -> Iterator[str]:
    """Module names of the `_target_` strings in a params section."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if isinstance(target, str):
            yield target.rpartition(".")[0]
        for value in node.values():
            yield from targets(value)
    elif isinstance(node, list):
        for value in node:
            yield from targets(value)


def option_targets(key: str) -> Iterator[str]:
    """`_target_` modules of the params section `key` and, when `key` is a config group, of
    every option of the group: a `-S model=bigru` must re-run the stages it reaches."""
    node: object = PARAMS
    for part in key.split("."):
        node = node[part]  # type: ignore[index]
    yield from targets(node)
    for option in sorted((REPO / "conf" / key).glob("*.yaml")):
        yield from targets(yaml.safe_load(option.read_text(encoding="utf-8")))


STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


def stage_imports(name: str) -> set[str]:
    stage = STAGES[name]
    command = stage["cmd"].split()[3]  # python -m pipeline <command> ...
    roots = [f"pipeline.stages.{command}", *COMMON_ROOTS]
    for key in [*stage.get("params", []), *TARGETS_FROM.get(name, [])]:
        roots += option_targets(key)
    return closure(roots)


def code_deps(name: str) -> list[str]:
    return [d for d in STAGES[name]["deps"] if str(d).startswith("pipeline")]


def files_under(dep: str) -> set[str]:
    path = REPO / dep
    if path.is_file():
        return {dep}
    return {p.relative_to(REPO).as_posix() for p in path.rglob("*.py")}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_imported_module_is_a_dep(name: str) -> None:
    covered = set().union(*(files_under(d) for d in code_deps(name)))
    missing = sorted(stage_imports(name) - covered)
    assert not missing, f"dvc.yaml stage {name!r} imports but does not list: {missing}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_dep_is_imported(name: str) -> None:
    imported = stage_imports(name) | NOT_IMPORTED_OK.get(name, set())
    for dep in code_deps(name):
        unused = sorted(files_under(dep) - imported)
        assert not unused, f"dvc.yaml stage {name!r} lists {dep} but never imports {unused}"


def test_the_walk_sees_lazy_imports_and_hydra_targets() -> None:
    files = stage_imports("dedup")
    assert "pipeline/store/staging.py" in files  # imported inside a function
    assert "pipeline/dedup/steps/near.py" in files  # named only by `_target_` in params
    assert "pipeline/dedup/lsh.py" in files  # lazily, by the near step
    assert "pipeline/store/search.py" not in files  # server-only SQL


def test_dvc_ignores_python_caches() -> None:
    patterns = (REPO / ".dvcignore").read_text(encoding="utf-8").split()
    assert "__pycache__/" in patterns  # numba writes its kernel cache beside the code


def test_every_uncached_output_is_committed_not_ignored() -> None:
    """A `cache: false` metric or out lives in git, not in the DVC cache or remote: if
    .gitignore hid it, an experiment's commit would lack it (`dvc metrics diff A B` fails
    to load it) and a clone that pulls from the remote would miss it (`dvc status` dirty)."""
    import subprocess

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    uncached = [
        path
        for stage in stages.values()
        for entry in [*stage.get("metrics", []), *stage.get("outs", [])]
        if isinstance(entry, dict)
        for path, opts in entry.items()
        if (opts or {}).get("cache") is False
    ]
    assert uncached
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *uncached], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    assert ignored == [], f"git-ignored uncached outputs: {ignored}"
