"""Setting up a partitioned deployment, or bringing it up to date:
`migrate_partitions(proxy, partitions)`

1. refuses what cannot work (a changed partition list, a partition listed
   elsewhere before, a partition or proxy that already holds lines) before
   writing anything;
2. migrates every partition like a single server, strides its identity
   sequences (ids are then unique across partitions) and records its place;
3. reads the API from the partitions' own catalog (catalog.py) and generates
   the proxy's routing layer from it (generator.py, by the rules of rules.py);
4. applies the layer in one transaction, with the PL/Proxy cluster and the
   login's user mapping, unless it is the one already there: migrating again
   changes nothing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import tuple_row

from ..migrate import MigrateReport, apply_migrations, migrate, sql_dir
from .catalog import read_catalog
from .common import CLUSTER, LOGIN, PartitionSetupError
from .generator import generate_layer, login_grants
from .rules import ROUTES, OnPartition

CONNECT_TIMEOUT = "10"  # seconds: an unreachable partition fails its calls, it does not hang them

# -- Partitions -----------------------------------------------------------------------

_CREDENTIALS = {"user", "password", "passfile", "sslpassword"}


def location(dsn: str) -> str:
    """Where a partition is, without whom to log in as: what the proxy stores
    (its login comes from the user mapping) and what identifies the partition."""
    params = {k: v for k, v in conninfo_to_dict(dsn).items() if k not in _CREDENTIALS and v is not None}
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    return make_conninfo("", **dict(sorted(params.items())))


def _read_sql(name: str, root: Path) -> str:
    return (root / "proxy" / name).read_text(encoding="utf-8")


# The versioned tables (yoyo) of the proxy and of every partition, beside
# the single server's sql/migrations; their ids start with proxy_ and
# partition_, distinct from the single server's in yoyo's records.
PROXY_MIGRATIONS = "proxy_migrations"
PARTITION_MIGRATIONS = "partition_migrations"

# The proxy's fixed functions, applied before the generated layer and never
# dropped with it.
STATIC_FILES = ("proxy.sql", "line_hash.sql")
_DEFINED = re.compile(r"^CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|AGGREGATE)\s+(credit\w*)\.(\w+)\s*\(",
                      re.IGNORECASE | re.MULTILINE)


def defined_functions(static_sql: str) -> set[str]:
    """schema.name of every function and aggregate the SQL text creates."""
    return {f"{schema}.{name}" for schema, name in _DEFINED.findall(static_sql)}


# An ordering probe: list_lines' pages are merged on the proxy in the proxy's
# collation, so it must order retailer ids as the partitions do.
_ORDERING = """SELECT string_agg(x, '|' ORDER BY x) FROM (VALUES ('a'), ('B'), ('b'), ('-b'), ('e'), ('é'), ('f'),
    ('10'), ('9'), (' z'), ('a b'), ('ab'), ('A')) v(x)"""


def _credit_rows(conn: psycopg.Connection) -> str | None:
    """The name of a credit table that has rows, if any."""
    tables = conn.execute("SELECT c.oid::regclass::text FROM pg_class c WHERE c.relnamespace = "
                          "to_regnamespace('credit') AND c.relkind = 'r' "
                          "AND c.relname NOT IN ('currency', 'event_state') "
                          "ORDER BY 1").fetchall()
    for (table,) in tables:
        if conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.SQL(table))).fetchone()[0]:
            return table
    return None


def _partition_place(conn: psycopg.Connection) -> tuple[int, int] | None:
    if conn.execute("SELECT to_regclass('credit.partition_config') IS NULL").fetchone()[0]:
        return None
    return conn.execute("SELECT partition_index, partition_count FROM credit.partition_config").fetchone()


def _check_partition(dsn: str, index: int, count: int) -> None:
    """Refuses, before anything is written, a database that is not or cannot
    become partition `index` of `count`."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("SELECT to_regnamespace('credit_route') IS NULL").fetchone()[0]:
            raise PartitionSetupError(f"partition {index} ({location(dsn)}) is a pgcredit proxy, not a partition")
        place = _partition_place(conn)
        if place is not None and tuple(place) != (index, count):
            raise PartitionSetupError(
                f"partition {index} ({location(dsn)}) was set up as partition {place[0]} of {place[1]}: "
                "the partition list is fixed once set (PARTITIONING.md explains how to add partitions)")
        if place is None:
            table = _credit_rows(conn)
            if table:
                raise PartitionSetupError(
                    f"partition {index} ({location(dsn)}) already holds data ({table} has rows): a partition "
                    "must start empty, its ids are strided across partitions (PARTITIONING.md: moving a "
                    "single server's lines into partitions)")


def set_up_partition(dsn: str, index: int, count: int, root: Path | None = None,
                     password_hash: str | None = None) -> tuple[MigrateReport, str]:
    """Migrates the database like a single server, then makes it partition
    `index` of `count`: its own migrations and functions, the login the proxy
    uses (with password_hash, a SCRAM verifier, when given), its identity
    sequences strided (ids index+1, index+1+count, ...: unique across
    partitions) and its place recorded. Returns what was migrated and the
    partition's hash fingerprint."""
    root = root or sql_dir()
    report = migrate(dsn, root)
    applied = apply_migrations(dsn, root / "proxy" / PARTITION_MIGRATIONS)
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("DO $login$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {}) "
                             "THEN CREATE ROLE {} LOGIN; END IF; END $login$").format(
                                 sql.Literal(LOGIN), sql.Identifier(LOGIN)))
        conn.execute(sql.SQL("GRANT credit_app, credit_auditor TO {}").format(sql.Identifier(LOGIN)))
        if password_hash:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(LOGIN),
                                                                     sql.Literal(password_hash)))
        conn.execute(_read_sql("line_hash.sql", root))
        conn.execute(_read_sql("partition.sql", root))
        conn.execute("SET ROLE credit_owner")
        identities = conn.execute("""
            SELECT c.relname, a.attname, s.seqincrement, s.seqstart
              FROM pg_class c
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attidentity <> ''
              JOIN pg_sequence s ON s.seqrelid = pg_get_serial_sequence(format('credit.%I', c.relname), a.attname)::regclass
             WHERE c.relnamespace = 'credit'::regnamespace AND c.relkind = 'r' ORDER BY 1, 2""").fetchall()
        for table, column, increment, start in identities:
            if (increment, start) == (count, index + 1):
                continue
            target = sql.SQL("credit.{}").format(sql.Identifier(table))
            if conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(target)).fetchone()[0]:
                raise PartitionSetupError(
                    f"partition {index} ({location(dsn)}): credit.{table} has rows numbered by a sequence that is "
                    f"not yet strided for {count} partitions; its ids could repeat on another partition")
            conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET INCREMENT BY {} SET START WITH {} RESTART").format(
                target, sql.Identifier(column), sql.Literal(count), sql.Literal(index + 1)))
        fingerprint = conn.execute("SELECT credit._line_hash_fingerprint()").fetchone()[0]
        conn.execute("INSERT INTO credit.partition_config (partition_index, partition_count, hash_fingerprint) "
                     "VALUES (%s, %s, %s) ON CONFLICT (one_row) DO NOTHING", [index, count, fingerprint])
        conn.execute("RESET ROLE")
    return MigrateReport(report.applied + applied, report.function_files, report.bridged), fingerprint


# -- The proxy ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PartitionReport:
    partitions: list[MigrateReport]
    functions: int
    views: int
    layer_changed: bool
    proxy_applied: list[str] = field(default_factory=list)  # the proxy's migrations applied


def _recorded(conn: psycopg.Connection):
    if conn.execute("SELECT to_regclass('credit_route.partition_config') IS NULL").fetchone()[0]:
        return None
    return conn.execute("SELECT partitions, hash_fingerprint, layer_digest FROM credit_route.partition_config"
                        ).fetchone()


def _mapping_password(conn: psycopg.Connection) -> str | None:
    row = conn.execute("SELECT umoptions FROM pg_user_mappings WHERE srvname = %s AND usename = 'credit_owner'",
                       [CLUSTER]).fetchone()
    if row is None:
        return None
    options = dict(o.split("=", 1) for o in row[0] or [])
    return options.get("password")


def migrate_partitions(proxy_dsn: str, partition_dsns: list[str], root: Path | None = None,
                       progress: Callable[[str], None] = lambda line: None) -> PartitionReport:
    """Sets up (or brings up to date) a proxy in front of `partition_dsns`.
    The proxy DSN must reach the proxy database as a superuser (PL/Proxy is an
    untrusted language); each partition DSN as a user who can migrate it
    (README: a superuser, or its owner with CREATEROLE)."""
    root = root or sql_dir()
    count = len(partition_dsns)
    if count == 0 or count & (count - 1):
        raise PartitionSetupError(f"the number of partitions must be a power of two (1, 2, 4, 8, ...), got {count}")
    places = [location(d) for d in partition_dsns]
    if len(set(places)) != count:
        raise PartitionSetupError("a partition is listed twice: " + ", ".join(places))
    if location(proxy_dsn) in places:
        raise PartitionSetupError("the proxy database cannot also be a partition")

    with psycopg.connect(proxy_dsn, autocommit=True) as proxy:
        if not proxy.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
            raise PartitionSetupError("the proxy must be set up by a superuser: PL/Proxy is an untrusted "
                                      "language, and only a superuser may create its functions")
        recorded = _recorded(proxy)
        if recorded is None and proxy.execute("SELECT to_regclass('credit.line') IS NOT NULL").fetchone()[0]:
            raise PartitionSetupError("the proxy database holds pgcredit's tables (a single server's schema): "
                                      "a proxy is a database of its own, in front of the partitions")
        if recorded is not None and list(recorded[0]) != places:
            raise PartitionSetupError(
                "the partition list is fixed once set: this proxy routes to\n  "
                + "\n  ".join(f"{i}: {p}" for i, p in enumerate(recorded[0]))
                + "\nnot\n  " + "\n  ".join(f"{i}: {p}" for i, p in enumerate(places))
                + "\n(PARTITIONING.md: adding partitions, moving one to another server)")
        password = _mapping_password(proxy)
        ordering = proxy.execute(_ORDERING).fetchone()[0]

    for i, dsn in enumerate(partition_dsns):
        _check_partition(dsn, i, count)

    # A new login password, set on the partitions as a SCRAM verifier and kept
    # only in the proxy's user mapping (visible to superusers and credit_owner).
    first_setup = password is None
    if first_setup:
        password = secrets.token_urlsafe(24)
    reports, catalogs, fingerprints = [], [], set()
    for i, dsn in enumerate(partition_dsns):
        verifier = None
        if first_setup:
            with psycopg.connect(dsn) as conn:
                verifier = conn.pgconn.encrypt_password(password.encode(), LOGIN.encode(), b"scram-sha-256").decode()
        report, fingerprint = set_up_partition(dsn, i, count, root, verifier)
        reports.append(report)
        fingerprints.add(fingerprint)
        with psycopg.connect(dsn, autocommit=True) as conn:
            catalogs.append(read_catalog(conn))
            if conn.execute(_ORDERING).fetchone()[0] != ordering:
                raise PartitionSetupError(f"partition {i} ({places[i]}) sorts text differently from the proxy: "
                                          "give the proxy and every partition the same collation")
        progress(f"partition {i} of {count} ({places[i]}): "
                 + (f"applied {', '.join(report.applied)}" if report.applied else "no migration pending"))
    for i, catalog in enumerate(catalogs[1:], 1):
        if catalog != catalogs[0]:
            raise PartitionSetupError(f"partition {i}'s API differs from partition 0's after migrating both: "
                                      "are they running the same pgcredit version?")
    # What the proxy's login must call beyond credit_app's and credit_auditor's
    # grants: the batches' check functions, and functions kept for their owner
    # (record_reconcile), which on the proxy only credit_owner may call.
    for dsn in partition_dsns:
        with psycopg.connect(dsn) as conn:
            for check in login_grants(catalogs[0]):
                conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
                    sql.SQL(check), sql.Identifier(LOGIN)))
    if len(fingerprints) != 1:
        raise PartitionSetupError("the partitions hash line keys differently (different PostgreSQL versions "
                                  "or machine architectures?): they cannot share one routing")

    proxy_applied = apply_migrations(proxy_dsn, root / "proxy" / PROXY_MIGRATIONS)
    if proxy_applied:
        progress(f"proxy: applied {', '.join(proxy_applied)}")
    static = "".join(_read_sql(name, root) for name in STATIC_FILES)
    layer = generate_layer(catalogs[0], count)
    digest = hashlib.sha256((static + layer).encode()).hexdigest()
    changed = recorded is None or recorded[2] != digest
    if changed:
        with psycopg.connect(proxy_dsn) as proxy:
            proxy.execute("SELECT pg_advisory_xact_lock(hashtext('pgcredit proxy layer'))")
            proxy.execute(static)
            fingerprint = proxy.execute("SELECT credit._line_hash_fingerprint()").fetchone()[0]
            if fingerprint not in fingerprints:
                raise PartitionSetupError("the proxy hashes line keys differently from the partitions "
                                          "(another PostgreSQL version or machine architecture?)")
            if recorded is not None and recorded[1] != fingerprint:
                raise PartitionSetupError("this proxy now hashes line keys differently from when its lines were "
                                          "placed: routing would look for them on the wrong partitions")
            _drop_layer(proxy, keep=defined_functions(static))
            _configure_cluster(proxy, places, password)
            proxy.execute(layer)
            proxy.execute("""
                INSERT INTO credit_route.partition_config (partition_count, partitions, hash_fingerprint, layer_digest)
                VALUES (%s, %s, %s, %s)
                ON CONFLICT (one_row) DO UPDATE SET layer_digest = excluded.layer_digest, updated_at = now()""",
                          [count, places, fingerprint, digest])
    _copy_comments(partition_dsns[0], proxy_dsn)
    functions = len(catalogs[0].functions)
    progress(f"proxy: routing layer for {functions} functions and {len(catalogs[0].views)} views "
             + ("installed" if changed else "unchanged"))
    return PartitionReport(reports, functions, len(catalogs[0].views), changed, proxy_applied)


# The partitions' COMMENT ON of the API (the SQL reference), by the names the
# layer gives the same objects on the proxy.
_COMMENTS = """
SELECT 'FUNCTION', format('credit.%I(%s', p.proname, pg_get_function_identity_arguments(p.oid)), d.description
  FROM pg_proc p JOIN pg_description d ON d.classoid = 'pg_proc'::regclass AND d.objoid = p.oid AND d.objsubid = 0
 WHERE p.pronamespace = 'credit'::regnamespace AND p.proname !~ '^_'
UNION ALL
SELECT 'VIEW', format('credit.%I', c.relname), d.description
  FROM pg_class c JOIN pg_description d ON d.classoid = 'pg_class'::regclass AND d.objoid = c.oid AND d.objsubid = 0
 WHERE c.relnamespace = 'credit'::regnamespace AND c.relkind = 'v'
UNION ALL
SELECT 'TYPE', format('credit.%I', t.typname), d.description
  FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid AND c.relkind = 'c'
  JOIN pg_description d ON d.classoid = 'pg_type'::regclass AND d.objoid = t.oid AND d.objsubid = 0
 WHERE t.typnamespace = 'credit'::regnamespace
UNION ALL
SELECT 'COLUMN', format('credit.%I.%I', c.relname, a.attname), d.description
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
  JOIN pg_description d ON d.classoid = 'pg_class'::regclass AND d.objoid = c.oid AND d.objsubid = a.attnum
 WHERE c.relnamespace = 'credit'::regnamespace AND c.relkind IN ('v', 'c')
"""


def _copy_comments(partition_dsn: str, proxy_dsn: str) -> None:
    """Gives the proxy's functions, result types and views the partitions'
    comments, so that psql's \\df+ and `pgcredit reference` on the proxy
    show the single server's reference. On every migrate: a comment can
    change while the layer does not."""
    with psycopg.connect(partition_dsn) as conn:
        comments = conn.execute(_COMMENTS).fetchall()
    with psycopg.connect(proxy_dsn) as proxy:
        for kind, name, text in comments:
            if kind == "FUNCTION":
                rule = ROUTES.get(name[len("credit."):name.index("(")])
                sep = "" if name.endswith("(") else ", "
                name += f"{sep}{rule.arg} integer)" if isinstance(rule, OnPartition) else ")"
                if isinstance(rule, OnPartition):  # the argument the proxy adds
                    text = text.replace("\nArguments:\n", f"\nArguments:\n  {rule.arg}: the partition, 0 to N-1 "
                                        "(credit.partitions() lists them); required through the proxy.\n", 1)
            proxy.execute(sql.SQL("COMMENT ON {} {} IS {}").format(sql.SQL(kind), sql.SQL(name), sql.Literal(text)))


def _drop_layer(conn: psycopg.Connection, keep: set[str]) -> None:
    """Drops the generated objects (views, then functions, then types), each
    without CASCADE: an object of someone else's that depends on one of them
    stops the migration with PostgreSQL's own error naming it. keep: the
    functions (schema.name) of the static SQL, which stay."""
    views = conn.execute("SELECT c.oid::regclass::text FROM pg_class c WHERE c.relkind = 'v' "
                         "AND c.relnamespace = 'credit'::regnamespace").fetchall()
    functions = conn.execute("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
         WHERE p.pronamespace IN ('credit'::regnamespace, 'credit_route'::regnamespace)
           AND p.pronamespace::regnamespace::text || '.' || p.proname <> ALL (%s)""", [sorted(keep)]).fetchall()
    types = conn.execute("SELECT t.oid::regtype::text FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid "
                         "WHERE t.typnamespace = 'credit'::regnamespace AND c.relkind = 'c'").fetchall()
    for kind, rows in (("VIEW", views), ("FUNCTION", functions), ("TYPE", types)):
        for (name,) in rows:
            conn.execute(sql.SQL("DROP {} {}").format(sql.SQL(kind), sql.SQL(name)))


def _configure_cluster(conn: psycopg.Connection, places: list[str], password: str) -> None:
    """The PL/Proxy cluster (a SQL/MED server listing the partitions) and the
    user mapping for credit_owner, whose SECURITY DEFINER wrappers are the only
    callers: the routing functions run as credit_owner, and no other role can
    use the mapping or read its password."""
    exists = conn.execute("SELECT 1 FROM pg_foreign_server WHERE srvname = %s", [CLUSTER]).fetchone()
    options = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(f"p{i}"), sql.Literal(p))
                                 for i, p in enumerate(places))
    if not exists:
        conn.execute(sql.SQL("CREATE SERVER {} FOREIGN DATA WRAPPER plproxy OPTIONS ({})").format(
            sql.Identifier(CLUSTER), options))
    conn.execute(sql.SQL("REVOKE ALL ON FOREIGN SERVER {} FROM PUBLIC").format(sql.Identifier(CLUSTER)))
    conn.execute(sql.SQL("GRANT USAGE ON FOREIGN SERVER {} TO credit_owner").format(sql.Identifier(CLUSTER)))
    if not conn.execute("SELECT 1 FROM pg_user_mappings WHERE srvname = %s AND usename = 'credit_owner'",
                        [CLUSTER]).fetchone():
        conn.execute(sql.SQL("CREATE USER MAPPING FOR credit_owner SERVER {} OPTIONS (user {}, password {})").format(
            sql.Identifier(CLUSTER), sql.Literal(LOGIN), sql.Literal(password)))


# -- For tests, the bench and operators ----------------------------------------------------

def partition_of(conn: psycopg.Connection, wholesaler_id: str, retailer_id: str) -> int:
    """The partition (0-based) that holds a line, asked of the proxy."""
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute("SELECT credit._line_hash(%s, %s) & (partition_count - 1) "
                           "FROM credit_route.partition_config", [wholesaler_id, retailer_id]).fetchone()[0]
