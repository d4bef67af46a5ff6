"""Keep requirements.lock and pyproject.toml in step.

``stamp`` writes into the lock a digest of the dependencies pyproject.toml declares (build
requirements, dependencies, optional dependencies); ``check`` fails, saying what to do, when the
declared dependencies changed since the lock was made. ``make lock`` regenerates and stamps it;
``make test``, ``make run`` and deploy/install.sh install only from it, with hashes.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
MARK = "# pyproject-dependencies-sha256: "


def declared_digest() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data.get("project", {})
    declared = {
        "build-system": sorted(data.get("build-system", {}).get("requires", [])),
        "dependencies": sorted(project.get("dependencies", [])),
        "optional-dependencies": {k: sorted(v) for k, v in project.get("optional-dependencies", {}).items()},
        "build-requirements.in": sorted(line.strip() for line in (ROOT / "deploy" / "build-requirements.in").read_text()
                                        .splitlines() if line.strip() and not line.startswith("#")),
    }
    return hashlib.sha256(json.dumps(declared, sort_keys=True).encode()).hexdigest()


def stamp() -> None:
    lines = [line for line in LOCK.read_text().splitlines() if not line.startswith(MARK)]
    LOCK.write_text("\n".join([MARK + declared_digest(), *lines]) + "\n")


def check() -> int:
    if not LOCK.exists():
        print("requirements.lock is missing: run `make lock` and commit it", file=sys.stderr)
        return 1
    first = LOCK.read_text().split("\n", 1)[0]
    if first != MARK + declared_digest():
        print("requirements.lock does not match the dependencies in pyproject.toml (they changed since the lock was "
              "made): run `make lock` (pip-compile --generate-hashes) and commit pyproject.toml and requirements.lock "
              "together", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["stamp"]:
        stamp()
    elif sys.argv[1:] == ["check"]:
        sys.exit(check())
    else:
        sys.exit("usage: deploy/lock.py stamp|check")
