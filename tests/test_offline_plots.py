"""`dvc plots show/diff` pages draw with no network: the repo's `plots.html_template` inlines
vega, vega-lite and vega-embed (docs/vendor/), where DVC's default page loads them from a CDN."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.browser import EXTERNAL_LOAD, render

REPO = Path(__file__).resolve().parent.parent
DVC = [sys.executable, "-m", "dvc"]
PLOTS_YAML = """plots:
  - confusion.csv:
      template: confusion
      x: actual
      y: predicted
  - calibration.csv:
      x: confidence
      y: accuracy
"""


def _template_setting() -> str:
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    return config.get("plots", "html_template")


@pytest.fixture
def plots_page(tmp_path: Path) -> Path:
    """`dvc plots show` in a fresh DVC project carrying the repo's .dvc/config and template."""
    project = tmp_path / "project"
    (project / ".dvc").mkdir(parents=True)
    shutil.copy(REPO / ".dvc" / "config", project / ".dvc" / "config")
    template = (project / ".dvc" / _template_setting()).resolve()
    template.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy((REPO / ".dvc" / _template_setting()).resolve(), template)
    (project / "dvc.yaml").write_text(PLOTS_YAML)
    rows = [("coding", "coding"), ("coding", "math"), ("math", "math"), ("qa", "qa")]
    lines = ["actual,predicted", *(f"{a},{p}" for a, p in rows)]
    (project / "confusion.csv").write_text("\n".join(lines) + "\n")
    (project / "calibration.csv").write_text("confidence,accuracy\n0.3,0.4\n0.6,0.7\n0.9,0.95\n")
    subprocess.run([*DVC, "plots", "show", "-o", "out"], cwd=project, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    return project / "out" / "index.html"


def test_the_repo_config_names_the_vendored_template() -> None:
    template = (REPO / ".dvc" / _template_setting()).resolve()
    assert template == REPO / "docs" / "vendor" / "dvc-plots.html"
    text = template.read_text(encoding="utf8")
    # DVC puts its CDN <script> tags where a template says {scripts}: ours must not say it.
    assert "{plot_divs}" in text and "{scripts}" not in text
    assert not EXTERNAL_LOAD.search(text)


def test_vendored_builds_are_the_npm_files_recorded(tmp_path: Path) -> None:
    versions = json.loads((REPO / "docs" / "vendor" / "VERSIONS.json").read_text())
    text = (REPO / "docs" / "vendor" / "dvc-plots.html").read_text(encoding="utf8")
    for package in ("vega", "vega-lite", "vega-embed"):
        assert f"<!-- {package}@{versions[package]['version']} " in text
        assert (REPO / "docs" / "vendor" / "licenses" / f"{package}.LICENSE").is_file()


def test_plots_page_loads_nothing_from_the_network(plots_page: Path) -> None:
    html = plots_page.read_text(encoding="utf8")
    assert "cdn.jsdelivr.net" not in html
    assert not EXTERNAL_LOAD.search(html)
    assert html.count('<div id = "') >= 2 or html.count("vegaEmbed(") >= 2


@pytest.mark.slow
def test_plots_draw_in_chromium_offline(plots_page: Path, tmp_path: Path) -> None:
    dom = render(plots_page.as_uri(), screenshot=tmp_path / "plots.png")
    # vega-embed draws each plot into a canvas; with a CDN page nothing loads, no canvas.
    assert dom.count('class="marks"') == 2, dom[-2000:]
    assert (tmp_path / "plots.png").stat().st_size > 10_000
