"""Reproducible installs: requirements.lock pins every package with its hashes and agrees with
pyproject.toml; a changed dependency makes the check (run first by `make test`) fail clearly."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(root / "deploy" / "lock.py"), "check"], capture_output=True, text=True)


def test_the_lock_agrees_with_pyproject() -> None:
    answer = check(ROOT)
    assert answer.returncode == 0, answer.stderr


def test_every_package_is_pinned_with_hashes() -> None:
    text = (ROOT / "requirements.lock").read_text()
    packages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if re.match(r"[A-Za-z0-9]", line):
            assert re.fullmatch(r"[A-Za-z0-9._-]+==[^ ]+ \\", line), line  # pinned to one version
            current = line.split("==")[0].lower()
            packages[current] = []
        elif current and "--hash=sha256:" in line:
            packages[current].append(line)
    assert len(packages) > 30
    assert all(packages.values()), [name for name, hashes in packages.items() if not hashes]
    assert {"fastapi", "pydantic", "pyserial", "setuptools", "pytest", "playwright"} <= set(packages)
    assert "--index-url" not in text and "--find-links" not in text and "file://" not in text


def test_a_changed_dependency_fails_the_check_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    for name in ("pyproject.toml", "requirements.lock", "deploy/lock.py", "deploy/build-requirements.in"):
        shutil.copyfile(ROOT / name, tmp_path / name)
    assert check(tmp_path).returncode == 0
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"httpx>=0.27",', '"httpx>=0.27",\n    "sqlalchemy>=2",'))
    answer = check(tmp_path)
    assert answer.returncode == 1
    assert "does not match the dependencies in pyproject.toml" in answer.stderr and "make lock" in answer.stderr
    pyproject.write_text(pyproject.read_text().replace("line-length = 110", "line-length = 120"))  # not a dependency
    (tmp_path / "requirements.lock").write_text((ROOT / "requirements.lock").read_text())
    pyproject.write_text((ROOT / "pyproject.toml").read_text().replace("line-length = 110", "line-length = 120"))
    assert check(tmp_path).returncode == 0
