"""Schema migrations (yoyo) followed by every function file, on every run.

yoyo's post-apply hook does not run when no migration is pending, so the
function files are loaded here instead, in one transaction, after the
migrations and under yoyo's migration lock.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
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


def _apply(backend: PostgresqlPsycopgBackend, folder: Path) -> list[str]:
    todo = backend.to_apply(read_migrations(str(folder)))
    backend.apply_migrations(todo)
    return [m.id for m in todo]


def apply_migrations(conninfo: str, folder: Path) -> list[str]:
    """Applies the pending migrations of one folder (the partitioned
    deployment's own, sql/proxy/*_migrations); returns their ids."""
    with _locked(conninfo) as backend:
        return _apply(backend, folder)


def migrate(conninfo: str, root: Path | None = None) -> MigrateReport:
    """Applies pending migrations, then (re)loads every function and view file."""
    require_utf8(conninfo)
    refuse_proxy(conninfo)
    root = root or sql_dir()
    with _locked(conninfo) as backend:
        applied = _apply(backend, root / "migrations")
        count = load_functions(conninfo, root)
    return MigrateReport(applied, count)
