"""The suite's throwaway clusters and the plain-SQL caller's helpers, shared by
the fixtures (conftest.py) and the tests."""

from __future__ import annotations

import collections
import itertools
import os
import re
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg
import testing.postgresql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from pgcredit.partitions import location
from pgcredit.tools import embedded

TEMPLATE = "pgcredit_template"
# SPEC's function table, plus statement(): what credit_app may execute.
API = ["open_line", "set_credit_limit", "block_line", "unblock_line", "get_available", "can_reserve",
       "reserve_credit", "release_reservation", "convert_to_debit", "record_payment", "reverse_debit",
       "adjust_balance", "expire_reservations", "reconcile", "statement",
       # v1.1: reads for applications and receivables
       "get_reservation", "list_reservations", "list_lines", "aging", "set_overdue_policy",
       # v1.1: bulk calls
       "reserve_credit_batch", "convert_to_debit_batch", "record_payment_batch",
       # v1.2: orders as they happen
       "amend_reservation",
       # v1.2: events
       "events_after"]
APP_USER = "test_app_login"
AUDITOR_USER = "test_auditor_login"
MONITOR_USER = "test_monitor_login"
# The contract (tests/contract/) runs twice: on a single server and through a
# proxy in front of PARTITIONS partitions (PL/Proxy; PostgreSQL 15).
PARTITIONS = 4


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


def _server_versions_problem() -> str | None:
    """Why the suite would test no database (or not every one asked for), or None."""
    found = {embedded.major_version(d) for d in embedded.bin_dirs()}
    wanted = os.environ.get("PGCREDIT_TEST_PG")
    if wanted:
        missing = [v for v in wanted.split(",") if not v.isdigit() or int(v) not in found]
        if missing:
            return (f"PGCREDIT_TEST_PG={wanted} asks for PostgreSQL {', '.join(missing)}, which is not "
                    f"installed (found: {', '.join(map(str, sorted(found))) or 'none'})")
    if not found:
        return ("no PostgreSQL server binaries found (set PGCREDIT_PG_BIN, install PostgreSQL, or "
                "`pip install 'pgcredit[embedded]'`): the database tests cannot run")
    return None


class Spares:
    """Fresh databases made ahead, on threads of their own, while tests run.
    Most tests take less time than the copy of the template they start from
    (CREATE DATABASE), and the server makes copies on the second core while
    a test runs on the first: the suite's wall time was mostly these copies.
    Each spare is made once and handed to one test; `later` runs cleanups
    (drops) on the same threads, so a test's teardown does not wait for them."""

    AHEAD = 2

    def __init__(self, make):
        self._make = make
        self._pool = ThreadPoolExecutor(2)
        self._ahead: collections.deque[Future] = collections.deque()
        self._later: list[Future] = []

    def take(self):
        while len(self._ahead) <= self.AHEAD:
            self._ahead.append(self._pool.submit(self._make))
        return self._ahead.popleft().result()

    def later(self, fn, *args) -> None:
        self._later = [f for f in self._later if not f.done()] + [self._pool.submit(fn, *args)]

    def close(self, discard) -> None:
        """Waits for the work under way; discards the spares no test took."""
        for future in self._ahead:
            if future.exception() is None:
                discard(future.result())
        for future in self._later:
            future.result()
        self._pool.shutdown()


class Cluster:
    _names = itertools.count()

    def __init__(self, pg: _Postgresql, major: int, bin_dir: Path):
        self.pg = pg
        self.major = major
        self.bin = bin_dir
        self.params = conninfo_to_dict(pg.url())
        self.spares = Spares(self.create_database)

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
            f"postgresql-15-plproxy, which ./dev test installs as root with apt-get)")


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


def call(conn: psycopg.Connection, fn: str, *args) -> dict:
    """SELECT * FROM credit.fn(args...) as a dict: the plain-SQL caller's view."""
    placeholders = ", ".join(["%s"] * len(args))
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT * FROM credit.{fn}({placeholders})", args)
        return cur.fetchone()


def table_counts(conn: psycopg.Connection) -> dict[str, dict]:
    """A fingerprint of every credit table, to prove nothing was written."""
    out = {}
    for table in ("line", "line_event", "reservation", "ledger_entry", "refusal", "open_item", "settlement",
                  "amendment", "event", "event_state"):
        out[table] = conn.execute(f"SELECT count(*), coalesce(sum(hashtext(t::text)), 0) AS h "
                                  f"FROM credit.{table} t").fetchone()
    return out
