"""`make gateway`: installs the Node packages once per package-lock.json, then starts in about a second,
quietly, and the mock puppet logs in without drawing a QR code.

The install checks run the real Makefile with a recording `npm` first on PATH (no registry here); the
start check runs the real gateway/index.js over the installed node_modules.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.peer import GATEWAY_DIR, REPO_ROOT, ensure_node_modules, free_port

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("node") is None,
                                reason="needs make and Node")

FAKE_NPM = """#!/bin/sh
echo "$*" >> "$NPM_CALLS"
mkdir -p node_modules
if [ "$1" = install ]; then
  mkdir -p "node_modules/$(eval echo \\${$#})"; echo changed >> package-lock.json
fi
"""


def make_tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the Makefile and a gateway/ with a lock file, and an environment whose npm records calls."""
    shutil.copy(REPO_ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "gateway").mkdir()
    shutil.copy(GATEWAY_DIR / "package-lock.json", tmp_path / "gateway" / "package-lock.json")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(FAKE_NPM)
    (bin_dir / "npm").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHATY_", "MAKE"))}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", NPM_CALLS=str(tmp_path / "npm-calls"))
    return tmp_path, env


def npm_calls(tree: Path) -> list[str]:
    path = tree / "npm-calls"
    return path.read_text().splitlines() if path.exists() else []


def test_npm_runs_once_per_lock_file_and_once_per_new_puppet(tmp_path):
    tree, env = make_tree(tmp_path)
    install = ["make", "-s", "gateway-install"]
    for _ in range(2):
        subprocess.run(install, cwd=tree, env=env, check=True, capture_output=True)
    assert [c.split()[0] for c in npm_calls(tree)] == ["ci"]
    with open(tree / "gateway" / "package-lock.json", "a") as lock:
        lock.write("\n")  # a new lock file (a pull that changed the dependencies): installed again
    subprocess.run(install, cwd=tree, env=env, check=True, capture_output=True)
    assert [c.split()[0] for c in npm_calls(tree)] == ["ci", "ci"]
    for _ in range(2):
        subprocess.run([*install, "WECHATY_PUPPET=wechaty-puppet-xp"], cwd=tree, env=env, check=True,
                       capture_output=True)
    calls = npm_calls(tree)
    assert len(calls) == 3 and calls[2].startswith("install") and calls[2].endswith("wechaty-puppet-xp")


def test_make_gateway_starts_in_about_a_second_quietly_and_the_mock_shows_no_qr_code(tmp_path):
    ensure_node_modules()  # the suite's one real install, normally done already
    tree, env = make_tree(tmp_path)
    for name in ("index.js", "scenario.js", "package.json"):
        shutil.copy(GATEWAY_DIR / name, tree / "gateway" / name)
    (tree / "gateway" / "node_modules").symlink_to((GATEWAY_DIR / "node_modules").resolve())
    env.update(WECHATY_GATEWAY_PORT=str(free_port()), WECHATY_GATEWAY_DATA_DIR=str(tmp_path / "data"),
               WECHATY_PUPPET_SERVICE_TOKEN="insecure_test_make")
    started = time.monotonic()
    proc = subprocess.Popen(["make", "-s", "gateway", "WECHATY_PUPPET=wechaty-puppet-mock"], cwd=tree,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "gateway ready" in line:
                break
        ready_s = time.monotonic() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    text = "".join(lines) + out
    assert any("gateway ready" in line for line in lines), text
    assert npm_calls(tree) == []  # installed already: no npm at all, so the start takes about a second
    print(f"make gateway: ready {ready_s:.2f} s after make started")  # 1.5 s measured here
    assert "\x1b[" not in text and "QR code" not in text, text  # the mock needs no scan
    assert "TLS disabled: INSECURE" not in text and "logged in" in text
    own = [line for line in text.strip().splitlines() if not line.startswith("make: ***")]  # make, killed
    assert len(own) <= 8, text
