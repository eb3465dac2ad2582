"""The browser SDK as a package: its builds are what the source makes, `npm pack` packs
exactly them, and `nextbest serve` serves them at /sdk/ without demo mode. (Its behaviour in
a browser is tested in test_demo_page.py, in headless Chromium.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from serving_helpers import MakeClient

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "web" / "sdk"


def test_the_builds_are_what_the_source_makes() -> None:
    run = subprocess.run(
        [sys.executable, str(SDK / "build.py"), "--check"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    source = (SDK / "src" / "nextbest.js").read_text()
    module = (SDK / "dist" / "nextbest.mjs").read_text()
    assert source.replace('"0.0.0"', '"0.1.0"') in module  # the source, wrapped


def test_npm_pack_packs_the_three_builds_at_the_projects_version(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed to test the SDK package (Node.js 20 with npm)"
    run = subprocess.run(
        [npm, "pack", "--dry-run", "--json", "--pack-destination", str(tmp_path)],
        cwd=SDK, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    packed = json.loads(run.stdout)[0]
    files = {entry["path"] for entry in packed["files"]}
    assert files == {"package.json", "dist/nextbest.js", "dist/nextbest.mjs", "dist/nextbest.d.ts"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    package = json.loads((SDK / "package.json").read_text())
    assert packed["version"] == package["version"] == project
    assert package["dependencies"] == {}
    for target in (package["main"], package["module"], package["types"], package["unpkg"]):
        assert (SDK / target).is_file()
    assert f"var VERSION = {json.dumps(project)};" in (SDK / "dist" / "nextbest.js").read_text()


def test_the_server_serves_the_builds_without_demo_mode(make_client: MakeClient) -> None:
    client = make_client()  # not demo mode
    for name, kind in [("nextbest.js", "javascript"), ("nextbest.mjs", "javascript")]:
        reply = client.get(f"/sdk/{name}")
        assert reply.status_code == 200 and kind in reply.headers["content-type"]
        assert reply.text == (SDK / "dist" / name).read_text()
    assert client.get("/sdk/nextbest.d.ts").status_code == 200
    assert client.get("/demo/").status_code == 404  # the demo itself is not there
