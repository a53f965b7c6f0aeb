"""One throwaway cluster per session and server version; a template database
built by the real migrations and function files; a fresh copy per test."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import testing.postgresql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from pgcredit import CreditClient, embedded, migrate
from pgcredit.partitions import location, migrate_partitions

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
MONITOR_USER = "test_monitor_login"
# The contract runs twice: on a single server and through a proxy in front of
# PARTITIONS partitions (PL/Proxy; PostgreSQL 15 where .ci/run installs it).
CONTRACT_MODULES = ("test_sql_api", "test_client", "test_receivables", "test_readme")
PARTITIONS = 4


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true",
                     help="long reliability runs: T1 16x2000 ops, T2 60 s, more property-test examples")


def pytest_configure(config):
    config.addinivalue_line("markers", "direct_only(reason): a contract test that cannot run through the "
                                       "proxy, and why (it is skipped there, visibly)")


def pytest_generate_tests(metafunc):
    if "deployment" in metafunc.fixturenames and metafunc.module.__name__ in CONTRACT_MODULES:
        metafunc.parametrize("deployment", ["direct", "proxy"], indirect=True,
                             ids=["direct", f"proxy{PARTITIONS}"])


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
        self.create_database_named(name, template)
        return name

    def create_database_named(self, name: str, template: str | None) -> None:
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))

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
            conn.execute(f"CREATE ROLE {MONITOR_USER} LOGIN IN ROLE credit_monitor")
        yield c
    finally:
        pg.stop()


def private_server(cluster, settings: tuple[str, ...] = ("fsync=off",)):
    """A started cluster of the test's own (same binaries), for tests that crash
    servers, need one without the credit roles, or other server settings."""
    return embedded.throwaway(cluster.bin, settings)


def plproxy_missing(cluster) -> str | None:
    """Why PL/Proxy cannot be used on this cluster, or None."""
    with cluster.admin() as conn:
        if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'plproxy'").fetchone():
            return None
    return (f"PL/Proxy is not installed for PostgreSQL {cluster.major} (Debian packages it for 15: "
            f"postgresql-15-plproxy, which .ci/run installs)")


class Proxy:
    """A proxy database and its partitions, databases of the test cluster."""

    def __init__(self, cluster: Cluster, name: str, partitions: list[str]):
        self.cluster, self.name, self.partitions = cluster, name, partitions

    @property
    def dsn(self) -> str:
        return self.cluster.dsn(self.name)

    def partition_dsns(self) -> list[str]:
        return [self.cluster.dsn(p) for p in self.partitions]

    def drop(self) -> None:
        for name in [self.name, *self.partitions]:
            self.cluster.drop_database(name)


@pytest.fixture(scope="session")
def proxy_templates(cluster):
    """A proxy and PARTITIONS partitions set up once by migrate --partitions,
    the templates of every test's own copies."""
    missing = plproxy_missing(cluster)
    if missing:
        pytest.skip(missing)
    names = [f"pgcredit_proxy_template_p{i}" for i in range(PARTITIONS)]
    with cluster.admin() as conn:
        for name in ["pgcredit_proxy_template", *names]:
            conn.execute(f'CREATE DATABASE "{name}"')
    migrate_partitions(cluster.dsn("pgcredit_proxy_template"), [cluster.dsn(n) for n in names])
    return Proxy(cluster, "pgcredit_proxy_template", names)


def new_proxy(cluster, templates: Proxy) -> Proxy:
    """A fresh copy of the template proxy and partitions. The copy's cluster
    definition is pointed at the copies of the partitions, a step only a test
    takes: migrate refuses a changed partition list."""
    name = f"t{os.getpid()}_{next(Cluster._names)}"
    proxy = Proxy(cluster, name, [f"{name}_p{i}" for i in range(PARTITIONS)])
    with ThreadPoolExecutor(PARTITIONS + 1) as pool:
        list(pool.map(lambda pair: cluster.create_database_named(*pair),
                      zip([name, *proxy.partitions], [templates.name, *templates.partitions])))
    with psycopg.connect(proxy.dsn, autocommit=True) as conn:
        places = [location(d) for d in proxy.partition_dsns()]
        for i, place in enumerate(places):
            conn.execute(psycopg.sql.SQL("ALTER SERVER credit_partitions OPTIONS (SET {} {})").format(
                psycopg.sql.Identifier(f"p{i}"), psycopg.sql.Literal(place)))
        conn.execute("UPDATE credit_route.partition_config SET partitions = %s", [places])
    return proxy


@pytest.fixture
def deployment(request) -> str:
    """direct (a single server) or proxy: contract modules run with both."""
    kind = getattr(request, "param", "direct")
    marker = request.node.get_closest_marker("direct_only")
    if kind == "proxy" and marker:
        pytest.skip(f"not through the proxy: {marker.args[0]}")
    return kind


@pytest.fixture
def proxy(cluster, deployment, request):
    """In the proxy deployment, the test's proxy; None on a single server."""
    if deployment != "proxy":
        yield None
        return
    p = new_proxy(cluster, request.getfixturevalue("proxy_templates"))
    yield p
    p.drop()


@pytest.fixture
def dbname(cluster, proxy):
    """The test's database: a fresh copy of the template, or of the proxy."""
    if proxy is not None:
        yield proxy.name
        return
    name = cluster.create_database()
    yield name
    cluster.drop_database(name)


@pytest.fixture
def dsn(cluster, dbname) -> str:
    return cluster.dsn(dbname)


_OBJECT = re.compile(r"\bcredit\.(\w+)\b(?!\s*\()")


class ProxyConnection(psycopg.Connection):
    """The tests' `conn` in the proxy deployment. Calls and views go to the
    proxy; a statement that reads or changes credit's tables (a test's look
    behind the API) goes to the partition that holds the test's lines. If its
    lines are on several partitions, the test cannot run through the proxy
    unchanged: it fails, saying so, and is marked direct_only."""

    proxy: Proxy

    def execute(self, query, params=None, **kwargs):
        if isinstance(query, str) and any(m not in self._views() for m in _OBJECT.findall(query)):
            return self._partition().execute(query, params, **kwargs)
        return super().execute(query, params, **kwargs)

    def _views(self) -> set[str]:
        if not hasattr(self, "_view_names"):
            self._view_names = {r["relname"] for r in super().execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'credit'::regnamespace AND relkind = 'v'")}
        return self._view_names

    def _partition(self) -> psycopg.Connection:
        if not hasattr(self, "_partitions"):
            self._partitions = [psycopg.connect(d, autocommit=True, row_factory=dict_row)
                                for d in self.proxy.partition_dsns()]
        used = [i for i, c in enumerate(self._partitions)
                if c.execute("SELECT EXISTS (SELECT FROM credit.line) OR EXISTS (SELECT FROM credit.refusal) "
                             "AS used").fetchone()["used"]]
        assert len(used) <= 1, (f"this test's lines are on partitions {used}: its look at the tables cannot "
                                "run through the proxy; mark it direct_only")
        return self._partitions[used[0] if used else 0]

    def close(self):
        for c in getattr(self, "_partitions", []):
            c.close()
        super().close()


@pytest.fixture
def conn(dsn, proxy):
    factory = psycopg.Connection if proxy is None else ProxyConnection
    with factory.connect(dsn, autocommit=True, row_factory=dict_row) as c:
        c.proxy = proxy
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
