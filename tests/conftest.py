"""One throwaway cluster per session and server version; a template database
built by the real migrations and function files; a fresh copy per test."""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import psycopg
import pytest
import testing.postgresql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from pgcredit import CreditClient, embedded, migrate

TEMPLATE = "pgcredit_template"
# SPEC's function table, plus statement(): what credit_app may execute.
API = ["open_line", "set_credit_limit", "block_line", "unblock_line", "get_available", "can_reserve",
       "reserve_credit", "release_reservation", "convert_to_debit", "record_payment", "reverse_debit",
       "adjust_balance", "expire_reservations", "reconcile", "statement",
       # v1.1: reads for applications and receivables
       "get_reservation", "list_reservations", "list_lines", "aging", "set_overdue_policy",
       # v1.1: bulk calls
       "reserve_credit_batch", "convert_to_debit_batch", "record_payment_batch"]
APP_USER = "test_app_login"
AUDITOR_USER = "test_auditor_login"


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true",
                     help="long reliability runs: T1 16x2000 ops, T2 60 s, more property-test examples")


def pytest_terminal_summary(terminalreporter):
    from reliability import REPORTS

    if REPORTS:
        terminalreporter.section("reliability report")
        for line in REPORTS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def long_run(request) -> bool:
    return request.config.getoption("--long")


class _Postgresql(testing.postgresql.Postgresql):
    """testing.postgresql, also as root: initdb and postgres then run as the
    unprivileged server account, which must own the cluster's directory."""

    def initialize_database(self):
        embedded.give_to_server_user(Path(self.base_dir))
        data = os.path.join(self.base_dir, "data")
        if not os.path.exists(os.path.join(data, "PG_VERSION")):
            subprocess.run(embedded.as_server_user(
                [self.initdb, "-D", data, "--lc-messages=C", "-U", "postgres", "-A", "trust",
                 "-E", "UTF8", "--locale=C"]), check=True, capture_output=True)

    def get_server_commandline(self):
        return embedded.as_server_user(super().get_server_commandline())


def _server_versions() -> list[tuple[int, Path]]:
    """One binary set per major version found: the suite runs on each."""
    wanted = os.environ.get("PGCREDIT_TEST_PG")  # e.g. "15" or "15,18"
    by_major: dict[int, Path] = {}
    for d in embedded.bin_dirs():
        by_major.setdefault(embedded.major_version(d), d)
    versions = sorted(by_major.items())
    if wanted:
        versions = [v for v in versions if str(v[0]) in wanted.split(",")]
    return versions


class Cluster:
    _names = itertools.count()

    def __init__(self, pg: _Postgresql, major: int, bin_dir: Path):
        self.pg = pg
        self.major = major
        self.bin = bin_dir
        self.params = conninfo_to_dict(pg.url())

    def dsn(self, dbname: str = "postgres", **overrides) -> str:
        return make_conninfo(**{**self.params, "dbname": dbname, **overrides})

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn(), autocommit=True)

    def create_database(self, template: str | None = TEMPLATE) -> str:
        name = f"t{os.getpid()}_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=_server_versions(), ids=lambda v: f"pg{v[0]}")
def cluster(request):
    major, found = request.param
    bin_dir = embedded.runnable(found)
    pg = _Postgresql(initdb=str(bin_dir / "initdb"), postgres=str(bin_dir / "postgres"),
                     postgres_args="-h 127.0.0.1 -F -c logging_collector=off -c max_connections=300")
    try:
        c = Cluster(pg, major, bin_dir)
        with c.admin() as conn:
            conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        migrate(c.dsn(TEMPLATE))
        with c.admin() as conn:
            # Login roles for privilege tests; the credit roles exist once migrated.
            conn.execute(f"CREATE ROLE {APP_USER} LOGIN IN ROLE credit_app")
            conn.execute(f"CREATE ROLE {AUDITOR_USER} LOGIN IN ROLE credit_auditor")
        yield c
    finally:
        pg.stop()


def private_server(cluster):
    """A started cluster of the test's own (same binaries), for tests that crash
    servers or need one without the credit roles."""
    return embedded.throwaway(cluster.bin)


@pytest.fixture
def dbname(cluster):
    name = cluster.create_database()
    yield name
    cluster.drop_database(name)


@pytest.fixture
def dsn(cluster, dbname) -> str:
    return cluster.dsn(dbname)


@pytest.fixture
def conn(dsn):
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as c:
        yield c


@pytest.fixture
def client(dsn):
    c = CreditClient(dsn)
    yield c
    c.close()


def call(conn: psycopg.Connection, fn: str, *args) -> dict:
    """SELECT * FROM credit.fn(args...) as a dict: the plain-SQL caller's view."""
    placeholders = ", ".join(["%s"] * len(args))
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT * FROM credit.{fn}({placeholders})", args)
        return cur.fetchone()


def table_counts(conn: psycopg.Connection) -> dict[str, dict]:
    """A fingerprint of every credit table, to prove nothing was written."""
    out = {}
    for table in ("line", "line_event", "reservation", "ledger_entry", "refusal", "open_item", "settlement"):
        out[table] = conn.execute(f"SELECT count(*), coalesce(sum(hashtext(t::text)), 0) AS h "
                                  f"FROM credit.{table} t").fetchone()
    return out
