"""The suite refuses to pass having tested nothing: a run whose database tests
would all be skipped fails instead (conftest.py, support.db)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pgcredit.tools import embedded
from support import db

TESTS = Path(__file__).resolve().parents[1]


def test_a_version_that_is_not_installed_fails_the_run():
    env = {**os.environ, "PGCREDIT_TEST_PG": "99"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(TESTS / "reliability" / "test_concurrency.py")],
                          cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0, done.stdout
    assert "PGCREDIT_TEST_PG=99 asks for PostgreSQL 99, which is not installed" in done.stdout + done.stderr


def test_no_server_binaries_is_a_problem(monkeypatch):
    monkeypatch.delenv("PGCREDIT_TEST_PG", raising=False)
    monkeypatch.setattr(embedded, "bin_dirs", lambda: [])
    assert "no PostgreSQL server binaries found" in db._server_versions_problem()


def test_installed_versions_are_no_problem(monkeypatch):
    found = sorted({embedded.major_version(d) for d in embedded.bin_dirs()})
    monkeypatch.setenv("PGCREDIT_TEST_PG", ",".join(map(str, found)))
    assert found and db._server_versions_problem() is None
