"""examples/node: the Node.js order service's own `node --test` suite, run
against a fresh database of this session's cluster, logged in as a role that
has credit_app alone; against a second database whose reserve_credit is
deliberately unlocked, for the suite's self-check; and against a server whose
synchronous standby never connects, for its unconfirmed commits."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from support.db import APP_USER
from support.reliability import report, unlock_reserve_credit

# A long harness: the default run takes it on the first server version only (conftest.py).
pytestmark = pytest.mark.first_version_by_default

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node"


@pytest.fixture(scope="module")
def node_example() -> Path:
    """examples/node with its packages installed, or a visible skip saying what is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the examples/node suite was not run")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.skip(f"examples/node needs node 20 or later, found {version}")
    if not (EXAMPLE / "node_modules" / "pg").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("examples/node/node_modules is missing and npm is not installed: suite not run")
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=EXAMPLE,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"npm ci failed in examples/node, suite not run: {done.stderr.strip()[-500:]}")
    return EXAMPLE


def _url(cluster, dbname: str) -> str:
    return f"postgresql://{APP_USER}@{cluster.params['host']}:{cluster.params['port']}/{dbname}"


@pytest.fixture
def broken_dbname(cluster):
    name = cluster.create_database()
    with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
        unlock_reserve_credit(conn)
    yield name
    cluster.drop_database(name)


def _socket_url(dsn: str) -> str:
    """A URL for node-postgres to a server reachable only on its Unix socket."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    return f"postgresql://{APP_USER}@localhost/{params['dbname']}?host={params['host']}&port={params['port']}"


def test_node_order_service(node_example, cluster, dbname, broken_dbname, unreplicated):
    env = {**os.environ, "DATABASE_URL": _url(cluster, dbname), "BROKEN_DATABASE_URL": _url(cluster, broken_dbname),
           "UNCONFIRMED_DATABASE_URL": _socket_url(unreplicated[0])}
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGOPTIONS", "PGPASSWORD"):
        env.pop(var, None)  # the URLs say everything; a stray PG* variable must not
    done = subprocess.run(["node", "--test", "--test-reporter=tap"], cwd=node_example, env=env,
                          capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    summary = {key: int(n) for key, n in re.findall(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", out, re.M)}
    assert done.returncode == 0, out
    # Every URL was given: every test must have run, the self-checks included.
    assert summary["fail"] == summary["cancelled"] == summary["skipped"] == summary["todo"] == 0, out
    assert summary["pass"] == summary["tests"] >= 13, out
    for burst in re.findall(r"^\s*# ((?:self-check )?burst .*)$", out, re.M):
        report(f"examples/node on PostgreSQL {cluster.major}, {burst}")
