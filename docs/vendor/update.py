"""Re-vendor the browser assets the offline pages use, from their npm packages (dev time only).

    python docs/vendor/update.py            # the versions pinned below
    python docs/vendor/update.py --check    # exit 1 if the committed files differ from npm's

Writes
- docs/vendor/dvc-plots.html: DVC's `plots.html_template` (.dvc/config) with vega, vega-lite
  and vega-embed inlined, so `dvc plots show/diff` pages draw with no network and from any
  output directory (a relative <script src> would break with `-o elsewhere/`);
- pipeline/api/static/swagger-ui/: the Swagger UI bundle, stylesheet and favicon the service
  serves at /docs (package data: they ship in the wheel);
- docs/vendor/VERSIONS.json: package, version, npm integrity and the sha256 of each file.
Needs `npm` (it runs `npm pack`, which downloads the tarballs from the npm registry).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO / "docs" / "vendor"
TEMPLATE = VENDOR / "dvc-plots.html"
SWAGGER = REPO / "pipeline" / "api" / "static" / "swagger-ui"
VERSIONS = VENDOR / "VERSIONS.json"

# vega-lite 5 is what DVC's renderer (dvc-render) writes its specs for; vega-embed 6 pairs
# with vega 5 (vega-embed 7 needs vega 6).
PACKAGES = {
    "vega": ("5.33.1", ["build/vega.min.js"]),
    "vega-lite": ("5.23.0", ["build/vega-lite.min.js"]),
    "vega-embed": ("6.29.0", ["build/vega-embed.min.js"]),
    "swagger-ui-dist": (
        "5.35.0",
        ["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE",
         "swagger-ui-bundle.js.LICENSE.txt"],
    ),
}  # fmt: skip

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- Offline template written by docs/vendor/update.py: DVC fills in the plot divs; there is
         no scripts placeholder on purpose, since DVC would put its CDN script tags there. -->
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def sha256(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def pack(package: str, version: str, work: Path) -> tuple[dict[str, bytes], str]:
    """The wanted files of `package@version` from `npm pack`, and npm's integrity string."""
    out = subprocess.run(
        ["npm", "pack", "--json", f"{package}@{version}"],
        cwd=work, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    info = json.loads(out)[0]
    with tarfile.open(work / info["filename"]) as tar:
        files = {}
        for name in PACKAGES[package][1]:
            member = tar.extractfile(f"package/{name}")
            if member is None:
                raise SystemExit(f"{package}@{version}: no file {name}")
            files[name] = member.read()
    return files, info["integrity"]


def render(packed: dict[str, dict[str, bytes]]) -> dict[Path, bytes]:
    """Every vendored file's path and bytes."""
    scripts = []
    for package in ("vega", "vega-lite", "vega-embed"):
        for name, data in packed[package].items():
            version = PACKAGES[package][0]
            note = f"{package}@{version} {name} (BSD-3-Clause, docs/vendor/licenses/)"
            scripts.append(f"    <!-- {note} -->\n    <script>{data.decode()}</script>")
    files = {TEMPLATE: PAGE.format(scripts="\n".join(scripts)).encode()}
    for name, data in packed["swagger-ui-dist"].items():
        files[SWAGGER / name] = data
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        packed, versions = {}, {}
        for package, (version, _) in PACKAGES.items():
            packed[package], integrity = pack(package, version, Path(tmp))
            versions[package] = {
                "version": version,
                "integrity": integrity,
                "files": {name: sha256(data) for name, data in packed[package].items()},
            }
    files = render(packed)
    files[VERSIONS] = (json.dumps(versions, indent=2, sort_keys=True) + "\n").encode()
    stale = [path for path, data in files.items() if not path.exists() or path.read_bytes() != data]
    if args.check:
        for path in stale:
            print(f"differs from npm: {path.relative_to(REPO)}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[path])
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
