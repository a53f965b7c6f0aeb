"""Schema migrations (yoyo) followed by every function file, on every run.

yoyo's post-apply hook does not run when no migration is pending, so the
function files are loaded here instead, in one transaction, after the
migrations and under yoyo's migration lock.

A migration may have a bridge (sql/bridges/<its id>.sql), run first on a
database that has the schema already: it re-creates functions of the
release before that would fail once the reload commits (OPERATIONS.md,
"Upgrading"), and migrate then waits for every transaction begun before the
bridge committed, so that no call is still running their old bodies.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from yoyo import read_migrations
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri


def sql_dir() -> Path:
    """sql/ inside the installed wheel, else the source tree's sql/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "sql", here.parents[1] / "sql"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise FileNotFoundError("pgcredit's sql/ directory is missing from this installation")


@dataclass(frozen=True)
class MigrateReport:
    applied: list[str]
    function_files: int
    bridged: list[str] = field(default_factory=list)  # the migrations whose bridge ran first


def _backend(conninfo: str) -> PostgresqlPsycopgBackend:
    # yoyo wants a URI of its own; connecting with the caller's conninfo keeps
    # every libpq form (key=value, URI, sockets, service files) working.
    class Backend(PostgresqlPsycopgBackend):
        def connect(self, dburi):
            return psycopg.connect(conninfo, autocommit=True)

    backend = Backend(parse_uri("postgresql+psycopg://"), "_yoyo_migration")
    backend.init_database()
    return backend


def pending(conninfo: str, root: Path | None = None) -> list[str]:
    """Ids of the migrations not yet applied."""
    root = root or sql_dir()
    backend = _backend(conninfo)
    try:
        return [m.id for m in backend.to_apply(read_migrations(str(root / "migrations")))]
    finally:
        backend.connection.close()


# Loaded in this order on every migrate: views read the functions.
OBJECT_FOLDERS = ("functions", "views")


def object_files(root: Path) -> list[Path]:
    """The CREATE OR REPLACE files of a sql/ tree, in load order (an older
    release's tree may have no views/ folder)."""
    return [f for folder in OBJECT_FOLDERS for f in sorted((root / folder).glob("*.sql"))]


def load_functions(conninfo: str, root: Path) -> int:
    files = object_files(root)
    with psycopg.connect(conninfo) as conn:
        for path in files:
            conn.execute(path.read_text(encoding="utf-8"))
        conn.execute("RESET ROLE")
    return len(files)


class WrongEncoding(Exception):
    """The database's encoding is not UTF8: ids and reasons are text in any
    language, and yoyo itself fails on SQL_ASCII with an obscure error."""


def require_utf8(conninfo: str) -> None:
    with psycopg.connect(conninfo) as conn:
        name, encoding = conn.execute(
            "SELECT current_database(), pg_encoding_to_char(encoding) FROM pg_database"
            " WHERE datname = current_database()").fetchone()
    # Under SQL_ASCII psycopg cannot decode text and returns bytes.
    name, encoding = (v.decode("ascii", "replace") if isinstance(v, bytes) else v for v in (name, encoding))
    if encoding != "UTF8":
        raise WrongEncoding(
            f"database {name!r} has encoding {encoding}; pgcredit needs UTF8. Create it with "
            f"CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0 (and a UTF-8 locale), then migrate.")


class IsAProxy(RuntimeError):
    """The database is a partitioned deployment's proxy: the single-server
    schema would replace its routing functions with local ones."""


def refuse_proxy(conninfo: str) -> None:
    with psycopg.connect(conninfo) as conn:
        if conn.execute("SELECT to_regnamespace('credit_route') IS NOT NULL").fetchone()[0]:
            raise IsAProxy("this database is a pgcredit proxy (PARTITIONING.md): migrate it with "
                           "`pgcredit migrate --dsn PROXY_DSN --partitions DSN1,DSN2,...`")


@contextlib.contextmanager
def _locked(conninfo: str):
    """yoyo's backend, holding yoyo's migration lock."""
    backend = _backend(conninfo)
    try:
        with backend.lock():
            yield backend
    finally:
        backend.connection.close()


def _apply(backend: PostgresqlPsycopgBackend, folder: Path, before=None) -> list[str]:
    """Applies the folder's pending migrations; before(ids), if given, runs
    first, with the ids of those about to be applied."""
    todo = backend.to_apply(read_migrations(str(folder)))
    if before:
        before([m.id for m in todo])
    backend.apply_migrations(todo)
    return [m.id for m in todo]


def apply_migrations(conninfo: str, folder: Path) -> list[str]:
    """Applies the pending migrations of one folder (the partitioned
    deployment's own, sql/proxy/*_migrations); returns their ids."""
    with _locked(conninfo) as backend:
        return _apply(backend, folder)


class OlderTransactionsOpen(RuntimeError):
    """A bridge ran, and transactions begun before it were still open when
    migrate stopped waiting for them."""


# Transactions that may be running the release before's functions: every
# backend of this database except autovacuum, which calls none of them and
# may take long.
_OLDER_TRANSACTIONS = """
SELECT a.pid, a.state, a.xact_start
  FROM pg_locks k JOIN pg_stat_activity a ON a.pid = k.pid
 WHERE k.locktype = 'virtualxid' AND k.granted AND k.virtualxid = ANY (%s)
   AND a.pid <> pg_backend_pid() AND a.datname = current_database()
   AND a.backend_type NOT LIKE 'autovacuum%%'"""


def _wait_for_older_transactions(conn: psycopg.Connection, timeout: float) -> None:
    """Waits until every transaction open now has ended, as CREATE INDEX
    CONCURRENTLY does: each transaction holds a lock on its own virtual
    transaction id until it ends, and pg_locks shows them to any role."""
    older = [r[0] for r in conn.execute(
        "SELECT virtualxid FROM pg_locks WHERE locktype = 'virtualxid' AND pid <> pg_backend_pid()")]
    deadline = time.monotonic() + timeout
    while older:
        open_ = conn.execute(_OLDER_TRANSACTIONS, (older,)).fetchall()
        if not open_:
            return
        if time.monotonic() > deadline:
            raise OlderTransactionsOpen(
                f"migrate waited {timeout:g} s for transactions begun before its bridge and these are still open: "
                # state and xact_start are NULL for another role's sessions without pg_read_all_stats
                + ", ".join(f"pid {pid}" + (f" ({state}, since {start:%H:%M:%S})" if start else "")
                            for pid, state, start in open_)
                + ". They may be running the previous release's functions: let them end (or end them with "
                  "pg_terminate_backend), then run migrate again.")
        time.sleep(0.02)


def run_bridges(conninfo: str, root: Path, todo: list[str], wait: float = 60) -> list[str]:
    """Runs the bridges of the pending migrations `todo`, each in its own
    transaction, then waits for the transactions begun before them."""
    files = [f for f in (root / "bridges" / f"{mid}.sql" for mid in todo) if f.is_file()]
    if not files:
        return []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if not conn.execute("SELECT to_regnamespace('credit') IS NOT NULL").fetchone()[0]:
            return []  # a new database: no release before it is running
        for path in files:
            with conn.transaction():
                conn.execute(path.read_text(encoding="utf-8"))
        _wait_for_older_transactions(conn, wait)
    return [f.stem for f in files]


def migrate(conninfo: str, root: Path | None = None, bridge_wait: float = 60) -> MigrateReport:
    """Applies pending migrations (after their bridges), then (re)loads every
    function and view file."""
    require_utf8(conninfo)
    refuse_proxy(conninfo)
    root = root or sql_dir()
    bridged: list[str] = []
    with _locked(conninfo) as backend:
        applied = _apply(backend, root / "migrations",
                         before=lambda todo: bridged.extend(run_bridges(conninfo, root, todo, bridge_wait)))
        count = load_functions(conninfo, root)
    return MigrateReport(applied, count, bridged)
