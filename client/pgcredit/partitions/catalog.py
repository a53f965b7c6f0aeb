"""A partition's API as its own catalog describes it: every function of schema
credit not starting with _ (arguments, defaults, result, grants), the
composite result types, the views and their grants. The proxy's layer is
generated from this, never from a list kept by hand."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from .common import LOGIN


@dataclass(frozen=True)
class Function:
    name: str
    args: str  # names, types and defaults, as CREATE FUNCTION takes them
    identity_args: str  # names and types
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]
    result: str  # as CREATE FUNCTION's RETURNS takes it
    returns_set: bool
    columns: tuple[tuple[str, str], ...]  # result columns; empty for a scalar
    grantees: tuple[str, ...]


@dataclass(frozen=True)
class View:
    name: str
    columns: tuple[tuple[str, str], ...]
    grantees: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    functions: tuple[Function, ...]
    views: tuple[View, ...]
    types: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # composite types of schema credit
    private: frozenset[str]  # "name(identity args)" of the credit._ functions
    schema_usage: tuple[str, ...]  # roles with USAGE on schema credit
    keywords: frozenset[str] = field(compare=False)  # of this server: what needs quoting


_FUNCTIONS = """
SELECT p.proname, pg_get_function_arguments(p.oid), pg_get_function_identity_arguments(p.oid),
       pg_get_function_result(p.oid), p.proretset, coalesce(p.proargnames, '{}'),
       coalesce(p.proargmodes::text[], '{}'), p.proargtypes::oid[]::regtype[]::text[],
       coalesce(p.proallargtypes, p.proargtypes::oid[])::regtype[]::text[],
       (SELECT t.typrelid FROM pg_type t WHERE t.oid = p.prorettype AND t.typtype = 'c'),
       array(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
               FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
              WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner ORDER BY 1)
  FROM pg_proc p
 WHERE p.pronamespace = 'credit'::regnamespace AND p.prokind = 'f' AND p.proname !~ '^_'
 ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)
"""

# A column of a domain type (a view's status column) has the domain's base
# type on the proxy: the partition has already applied the domain's checks.
_COLUMNS = """
SELECT a.attname, CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod)
                       ELSE format_type(a.atttypid, a.atttypmod) END
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""

_VIEWS = """
SELECT c.relname, c.oid,
       array(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
               FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
              WHERE a.privilege_type = 'SELECT' AND a.grantee <> c.relowner ORDER BY 1)
  FROM pg_class c WHERE c.relnamespace = 'credit'::regnamespace AND c.relkind = 'v' ORDER BY c.relname
"""

_TYPES = """
SELECT t.typname, t.typrelid FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid
 WHERE t.typnamespace = 'credit'::regnamespace AND t.typtype = 'c' AND c.relkind = 'c' ORDER BY t.typname
"""

_PRIVATE = """
SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' FROM pg_proc p
 WHERE p.pronamespace = 'credit'::regnamespace AND p.proname ~ '^_'
"""

_USAGE = """
SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
  FROM pg_namespace n, aclexplode(n.nspacl) a
 WHERE n.nspname = 'credit' AND a.privilege_type = 'USAGE' AND a.grantee <> n.nspowner ORDER BY 1
"""

# The words an identifier must be quoted for (any not unreserved).
_KEYWORDS = "SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'"


def read_catalog(conn: psycopg.Connection) -> Catalog:
    """The API of one partition, as its catalog describes it."""
    functions = []
    for (name, args, identity, result, returns_set, names, modes, in_types, all_types, relid,
         grantees) in conn.execute(_FUNCTIONS).fetchall():
        modes = modes or ["i"] * len(names)
        inputs = tuple(n for n, m in zip(names, modes) if m in ("i", "b", "v"))
        if relid:
            columns = tuple(conn.execute(_COLUMNS, [relid]).fetchall())
        else:
            columns = tuple((n, t) for n, m, t in zip(names, modes, all_types) if m in ("o", "t", "b"))
        # The proxy's own login is how the proxy calls, not one of the API's roles.
        functions.append(Function(name, args, identity, inputs, tuple(in_types), result, returns_set,
                                  columns, tuple(g for g in grantees if g != LOGIN)))
    views = tuple(View(name, tuple(conn.execute(_COLUMNS, [oid]).fetchall()), tuple(grantees))
                  for name, oid, grantees in conn.execute(_VIEWS).fetchall())
    types = tuple((name, tuple(conn.execute(_COLUMNS, [relid]).fetchall()))
                  for name, relid in conn.execute(_TYPES).fetchall())
    private = frozenset(r[0] for r in conn.execute(_PRIVATE))
    usage = tuple(r[0] for r in conn.execute(_USAGE))
    keywords = frozenset(r[0] for r in conn.execute(_KEYWORDS))
    return Catalog(tuple(functions), views, types, private, usage, keywords)
