"""A partitioned deployment: the same API served by a proxy database in front of
N partition databases (N a power of two), routed with PL/Proxy by a hash of
(wholesaler_id, retailer_id). PARTITIONING.md describes it for operators.

`migrate_partitions(proxy, partitions)`:

1. refuses what cannot work (a changed partition list, a partition listed
   elsewhere before, a partition or proxy that already holds lines) before
   writing anything;
2. migrates every partition like a single server, strides its identity
   sequences (ids are then unique across partitions) and records its place;
3. reads the API from the partitions' own catalog (functions in schema
   credit, their arguments, defaults, result types and grants; the views) and
   generates the proxy's routing layer from it: for each function a PL/Proxy
   function in credit_route and a wrapper of the same name, arguments and
   result in credit, which translates partition errors. Only the exceptions
   to "route by the first two arguments" are written down here (ROUTES,
   VIEWS); a new function whose first two arguments are wholesaler_id and
   retailer_id needs nothing;
4. applies the layer in one transaction, unless it is the one already there:
   migrating again changes nothing.
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

from .migrate import MigrateReport, migrate, sql_dir

CLUSTER = "credit_partitions"
LOGIN = "credit_proxy"  # the role the proxy logs into partitions as
CONNECT_TIMEOUT = "10"  # seconds: an unreachable partition fails its calls, it does not hang them


class PartitionSetupError(RuntimeError):
    """migrate --partitions refused: the message says why and what to do."""


# -- The exceptions to "route by (wholesaler_id, retailer_id)" -------------------

@dataclass(frozen=True)
class OnAll:
    """Run on every partition and merge the rows: order_by re-sorts them as a
    single server returns them, limit_arg re-applies a page size. line_args:
    when both are given (not NULL), the rows can only come from that line's
    partition, and the call goes there alone."""

    order_by: tuple[str, ...] = ()
    limit_arg: str | None = None
    line_args: tuple[str, str] | None = None
    also: str | None = None  # a partition function whose rows are added (same columns)


@dataclass(frozen=True)
class EachPartition:
    """Run on one partition after another and return the sum. With a
    budget_arg, each partition gets what is left of it: max_count stays a
    bound on the whole."""

    budget_arg: str | None = None


ROUTES: dict[str, OnAll | EachPartition] = {
    # reconcile() on the proxy also proves that every line is on the partition
    # the proxy routes it to.
    "reconcile": OnAll(also="credit._misplaced_lines()"),
    "expire_reservations": EachPartition("max_count"),
    # Each partition records its own run (its monitor_reconcile); returns the findings of all.
    "record_reconcile": EachPartition(),
    "list_lines": OnAll(order_by=("retailer_id",), limit_arg="max_rows"),
    "aging": OnAll(order_by=("wholesaler_id", "retailer_id"), line_args=("wholesaler_id", "retailer_id")),
}


@dataclass(frozen=True)
class ViewRule:
    """How a view's rows from every partition become the proxy's view: all the
    rows, or (aggregate) one row per value of group_by, whose numeric columns
    are summed unless `merge` names another aggregate for them. every_partition:
    the row appears only once every partition has one (a view of "the last
    run" means nothing while a partition has never run)."""

    aggregate: bool = False
    group_by: tuple[str, ...] = ()
    merge: tuple[tuple[str, str], ...] = ()
    every_partition: bool = False


VIEWS: dict[str, ViewRule] = {
    "line_summary": ViewRule(),
    "monitor_lines": ViewRule(),
    "monitor_totals": ViewRule(aggregate=True, merge=(("oldest_awaiting_sweep", "min"),)),
    # Counts of lines add up exactly: every line lives on one partition.
    "monitor_refusals": ViewRule(aggregate=True, group_by=("code",), merge=(("last_at", "max"),)),
    "monitor_book": ViewRule(aggregate=True, group_by=("currency", "status"),
                             merge=(("max_utilization_pct", "max"),)),
    "monitor_refusal_windows": ViewRule(aggregate=True, group_by=("code",)),
    "monitor_lock_waits": ViewRule(aggregate=True, merge=(("longest_wait_seconds", "max"),)),
    "monitor_sweep": ViewRule(aggregate=True, merge=(("oldest_awaiting_sweep_seconds", "max"),)),
    # The partitions' last scheduled runs: the oldest one's times (how stale the
    # book's proof is), the findings of all.
    "monitor_reconcile": ViewRule(aggregate=True, every_partition=True, merge=(
        ("run_id", "max"), ("started_at", "min"), ("finished_at", "min"),
        ("findings_by_check", "credit._jsonb_counts_sum"), ("oldest_active_hold_at", "min"),
        ("oldest_active_hold_age", "max"))),
}


def _aggregate_for(view: str, rule: ViewRule, column: str, type_: str) -> str:
    """The aggregate that merges one column of per-partition aggregate rows."""
    merge = dict(rule.merge)
    if column in merge:
        return merge[column]
    if type_ in ("bigint", "integer", "smallint", "numeric") or type_.startswith("numeric("):
        return "sum"
    raise PartitionSetupError(
        f"the proxy does not know how to merge column {column} ({type_}) of the aggregate view credit.{view}: "
        "add it to the view's merge rule in VIEWS, client/pgcredit/partitions.py")


# -- What the partitions' catalog says -------------------------------------------

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
    keywords: frozenset[str] = field(compare=False)


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
    usage = tuple(r[0] for r in conn.execute(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END FROM pg_namespace n, "
        "aclexplode(n.nspacl) a WHERE n.nspname = 'credit' AND a.privilege_type = 'USAGE' "
        "AND a.grantee <> n.nspowner ORDER BY 1"))
    keywords = frozenset(r[0] for r in conn.execute("SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'"))
    return Catalog(tuple(functions), views, types, private, usage, keywords)


# -- The generated layer ------------------------------------------------------------

class _Writer:
    """Builds the proxy's routing layer as one SQL script."""

    def __init__(self, catalog: Catalog, count: int):
        self.catalog = catalog
        self.count = count
        self.out: list[str] = []

    def ident(self, name: str) -> str:
        if re.fullmatch(r"[a-z_][a-z0-9_]*", name) and name not in self.catalog.keywords:
            return name
        return '"' + name.replace('"', '""') + '"'

    def columns(self, cols) -> str:
        return ", ".join(f"{self.ident(n)} {t}" for n, t in cols)

    # The pieces every routed function has: a PL/Proxy function in credit_route
    # (created by the superuser, PL/Proxy being untrusted) and a wrapper in credit.

    def route(self, name: str, args: str, result: str, body: str) -> None:
        signature = f"credit_route.{self.ident(name)}({args})"
        self.out.append(f"RESET ROLE;\nCREATE FUNCTION {signature} RETURNS {result}\n"
                        f"LANGUAGE plproxy AS $plproxy$\n    CLUSTER '{CLUSTER}';\n{body}\n$plproxy$;\n"
                        f"ALTER FUNCTION {signature} OWNER TO credit_owner;\n"
                        f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC;\nSET ROLE credit_owner;")

    def wrapper(self, name: str, args: str, identity_args: str, result: str, body: str,
                partition: str, grantees, declare: str = "", comment: str = "") -> None:
        fn = f"credit.{self.ident(name)}"
        self.out.append(
            (f"-- {comment}\n" if comment else "")
            + f"CREATE FUNCTION {fn}({args}) RETURNS {result}\n"
            "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$\n"
            "DECLARE\n    px_state text;\n    px_message text;\n    px_detail text;\n    px_hint text;\n"
            f"{declare}BEGIN\n{body}\nEXCEPTION WHEN OTHERS THEN\n"
            "    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,\n"
            "                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;\n"
            f"    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, {partition}, {self.count});\n"
            "    RAISE;\nEND\n$body$;\n"
            f"REVOKE ALL ON FUNCTION {fn}({identity_args}) FROM PUBLIC;"
            + "".join(f"\nGRANT EXECUTE ON FUNCTION {fn}({identity_args}) TO {g};" for g in grantees))

    def line_partition(self, w: str, r: str) -> str:
        return f"credit._line_hash({self.ident(w)}, {self.ident(r)}) & {self.count - 1}"

    def call_args(self, f: Function) -> str:
        return ", ".join(self.ident(a) for a in f.arg_names)

    @staticmethod
    def returns(f: Function, body_call: str, tail: str = "") -> str:
        if f.returns_set:
            return f"    RETURN QUERY SELECT * FROM {body_call} px_row{tail};"
        return f"    RETURN {body_call};"

    # The routing kinds.

    def by_line(self, f: Function) -> None:
        self.route(f.name, f.identity_args, f.result,
                   f"    RUN ON credit._line_hash({self.ident(f.arg_names[0])}, {self.ident(f.arg_names[1])});\n"
                   f"    TARGET credit.{self.ident(f.name)};")
        self.wrapper(f.name, f.args, f.identity_args, f.result,
                     self.returns(f, f"credit_route.{self.ident(f.name)}({self.call_args(f)})"),
                     self.line_partition(f.arg_names[0], f.arg_names[1]), f.grantees,
                     comment="Runs on the partition of the line (wholesaler_id, retailer_id).")

    def on_all(self, f: Function, rule: OnAll) -> None:
        if not f.returns_set:
            raise PartitionSetupError(f"credit.{f.name} must return a set to run on every partition")
        for arg in (rule.limit_arg, *(rule.line_args or ())):
            if arg and arg not in f.arg_names:
                raise PartitionSetupError(f"credit.{f.name} has no argument {arg}: update ROUTES in "
                                          "client/pgcredit/partitions.py to its new signature")
        names = {n for n, _ in f.columns}
        if not set(rule.order_by) <= names:
            raise PartitionSetupError(f"credit.{f.name} returns no column {set(rule.order_by) - names}: "
                                      "update ROUTES in client/pgcredit/partitions.py")
        if rule.also:
            cols = ", ".join(f"px_row.{self.ident(n)}" for n, _ in f.columns)
            self.route(f.name, f.identity_args, f.result,
                       f"    RUN ON ALL;\n    SELECT {cols} FROM credit.{self.ident(f.name)}({self.call_args(f)}) px_row\n"
                       f"    UNION ALL SELECT {cols} FROM {rule.also} px_row;")
        else:
            self.route(f.name, f.identity_args, f.result, f"    RUN ON ALL;\n    TARGET credit.{self.ident(f.name)};")
        tail = ""
        if rule.order_by:
            tail += " ORDER BY " + ", ".join(f"px_row.{self.ident(c)}" for c in rule.order_by)
        if rule.limit_arg:
            # At least 1: with LIMIT 0 the rows would never be asked for, and
            # the partitions' own refusal of a bad page size would not be seen.
            tail += f" LIMIT greatest({self.ident(rule.limit_arg)}, 1)"
        every = self.returns(f, f"credit_route.{self.ident(f.name)}({self.call_args(f)})", tail)
        partition = "NULL"
        if rule.line_args:
            w, r = rule.line_args
            one = f"{f.name}_line"
            self.route(one, f.identity_args, f.result,
                       f"    RUN ON credit._line_hash({self.ident(w)}, {self.ident(r)});\n"
                       f"    TARGET credit.{self.ident(f.name)};")
            one_call = self.returns(f, f"credit_route.{self.ident(one)}({self.call_args(f)})")
            every = (f"    IF {self.ident(w)} IS NOT NULL AND {self.ident(r)} IS NOT NULL THEN\n    {one_call}\n"
                     f"    ELSE\n    {every}\n    END IF;")
            partition = (f"CASE WHEN {self.ident(w)} IS NOT NULL AND {self.ident(r)} IS NOT NULL "
                         f"THEN {self.line_partition(w, r)} END")
        self.wrapper(f.name, f.args, f.identity_args, f.result, every, partition, f.grantees,
                     comment="Runs on every partition; the rows are merged as a single server returns them.")

    def each_partition(self, f: Function, rule: EachPartition) -> None:
        if f.returns_set or f.columns or (rule.budget_arg and rule.budget_arg not in f.arg_names):
            raise PartitionSetupError(f"credit.{f.name} no longer fits its EachPartition rule: update ROUTES in "
                                      "client/pgcredit/partitions.py")
        budget = self.ident(rule.budget_arg) if rule.budget_arg else None
        self.route(f.name, f"px_partition integer, {f.identity_args}", f.result,
                   f"    RUN ON px_partition;\n    SELECT credit.{self.ident(f.name)}({self.call_args(f)});")
        # A WHILE loop: a FOR loop's variable would not be visible to the exception handler.
        body = (f"    WHILE px_partition < {self.count} LOOP\n"
                f"        px_done := px_done + credit_route.{self.ident(f.name)}(px_partition, "
                + ", ".join(f"{budget} - px_done" if a == rule.budget_arg else self.ident(a) for a in f.arg_names)
                + ");\n" + (f"        EXIT WHEN px_done >= {budget};\n" if budget else "")
                + "        px_partition := px_partition + 1;\n"
                "    END LOOP;\n    RETURN px_done;")
        self.wrapper(f.name, f.args, f.identity_args, f.result, body, "px_partition", f.grantees,
                     declare=f"    px_partition integer := 0;\n    px_done {f.result} := 0;\n",
                     comment=(f"Each partition in turn gets what is left of {rule.budget_arg}." if budget
                              else "Runs on each partition in turn; returns the sum."))

    def batch(self, f: Function) -> None:
        """The items are split by their line's partition and sent to every
        partition concerned at once (SPLIT). Each partition commits its part on
        its own, so the whole batch is validated first, by the partition
        function credit._<name>_check(same arguments), which raises what the
        batch would; each partition's rows come back with the item numbers of
        the original call, and the rows are returned in item order."""
        if not f.returns_set or not f.columns or f.columns[0][0] != "item":
            raise PartitionSetupError(f"credit.{f.name} takes item arrays but does not return a set "
                                      "whose first column is item")
        arrays = [a for a, t in zip(f.arg_names, f.arg_types) if t.endswith("[]")]
        check = f"_{f.name}_check({f.identity_args})"
        if check not in self.catalog.private:
            body = (f"    RAISE USING ERRCODE = '0A000', MESSAGE = 'credit.{f.name} is not available through the proxy: "
                    f"its partitions have no credit.{check} to validate a whole batch before any partition commits';")
            self.wrapper(f.name, f.args, f.identity_args, f.result, body, "NULL", f.grantees)
            return
        self.route(f"_{f.name}_check", f"px_partition integer, {f.identity_args}", "void",
                   f"    RUN ON px_partition;\n    SELECT credit._{f.name}_check({self.call_args(f)});")
        cols = ", ".join(f"px_row.{self.ident(n)}" for n, _ in f.columns[1:])
        self.route(f.name, f"px_items integer[], {f.identity_args}", f.result,
                   f"    SPLIT px_items, {', '.join(self.ident(a) for a in arrays)};\n"
                   f"    RUN ON credit._line_hash({self.ident(f.arg_names[0])}, {self.ident(f.arg_names[1])});\n"
                   f"    SELECT (px_items)[px_row.item] AS item, {cols}\n"
                   f"      FROM credit.{self.ident(f.name)}({self.call_args(f)}) px_row;")
        # PL/Proxy splits only arrays of one length: a NULL array (allowed where
        # NULL means "the default for every item") becomes NULL elements.
        n = f"cardinality({self.ident(f.arg_names[0])})"
        args = ", ".join(
            f"coalesce({self.ident(a)}, array_fill(NULL::{t[:-2]}, ARRAY[{n}]))" if a in arrays[2:] else self.ident(a)
            for a, t in zip(f.arg_names, f.arg_types))
        # Validation runs where the first item goes (any partition would do: it reads no data).
        first = (f"credit._line_hash({self.ident(f.arg_names[0])}[1], {self.ident(f.arg_names[1])}[1])"
                 f" & {self.count - 1}")
        body = (f"    PERFORM credit_route.{self.ident('_' + f.name + '_check')}({first}, {self.call_args(f)});\n"
                f"    RETURN QUERY SELECT * FROM credit_route.{self.ident(f.name)}(\n"
                f"        ARRAY(SELECT generate_series(1, {n})), {args}) px_row ORDER BY px_row.item;")
        self.wrapper(f.name, f.args, f.identity_args, f.result, body, "NULL", f.grantees,
                     comment="Split by partition; validated as a whole first; rows in item order.")

    def view(self, v: View, rule: ViewRule) -> None:
        fn = f"_{v.name}_rows"
        cols = ", ".join(f"px_row.{self.ident(n)}" for n, _ in v.columns)
        result = f"TABLE({self.columns(v.columns)})"
        self.route(f"{v.name}_rows", "", result,
                   f"    RUN ON ALL;\n    SELECT {cols} FROM credit.{self.ident(v.name)} px_row;")
        self.wrapper(fn, "", "", result,
                     f"    RETURN QUERY SELECT * FROM credit_route.{self.ident(v.name + '_rows')}() px_row;",
                     "NULL", v.grantees, comment=f"The rows of credit.{v.name} on every partition.")
        if rule.aggregate:
            select = ", ".join(
                self.ident(n) if n in rule.group_by
                else f"{_aggregate_for(v.name, rule, n, t)}({self.ident(n)})::{t} AS {self.ident(n)}"
                for n, t in v.columns)
            group = " GROUP BY " + ", ".join(self.ident(g) for g in rule.group_by) if rule.group_by else ""
            having = f" HAVING count(*) = {self.count}" if rule.every_partition else ""
            query = f"SELECT {select} FROM credit.{self.ident(fn)}(){group}{having}"
        else:
            query = f"SELECT * FROM credit.{self.ident(fn)}()"
        # A view checks the functions it calls against its reader: the merge aggregates too.
        aggregates = {a for _, a in rule.merge if a.startswith("credit.")} if rule.aggregate else set()
        self.out.append(f"CREATE VIEW credit.{self.ident(v.name)} AS {query};"
                        + "".join(f"\nGRANT SELECT ON credit.{self.ident(v.name)} TO {g};" for g in v.grantees)
                        + "".join(f"\nGRANT EXECUTE ON FUNCTION {a}(jsonb) TO {g};"
                                  for a in sorted(aggregates) for g in v.grantees))

    def roles(self) -> str:
        """The roles the partitions grant to, created where missing (as a
        single server's migrations do), and their USAGE on the schema."""
        c = self.catalog
        names = sorted({g for f in c.functions for g in f.grantees} | {g for v in c.views for g in v.grantees}
                       | set(c.schema_usage))
        out = []
        for name in names:
            if name == "PUBLIC":
                raise PartitionSetupError("a partition grants something in schema credit to PUBLIC; "
                                          "the proxy will not")
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                raise PartitionSetupError(f"the proxy cannot recreate role {name}: use a lower-case name")
            out.append(f"DO $role$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{name}') "
                       f"THEN CREATE ROLE {name} NOLOGIN; END IF; END $role$;")
        out += [f"GRANT USAGE ON SCHEMA credit TO {g};" for g in c.schema_usage]
        return "\n".join(out)

    def script(self) -> str:
        known = {name for name, _ in self.catalog.types}
        for name, cols in self.catalog.types:
            for col, type_ in cols:
                _require_portable(f"credit.{name}.{col}", type_, known)
            self.out.append(f"CREATE TYPE credit.{self.ident(name)} AS ({self.columns(cols)});")
        for f in self.catalog.functions:
            for type_ in (*f.arg_types, f.result):
                _require_portable(f"credit.{f.name}", type_, known)
            names = f.arg_names[:2]
            if f.name in ROUTES:
                rule = ROUTES[f.name]
                self.on_all(f, rule) if isinstance(rule, OnAll) else self.each_partition(f, rule)
            elif names == ("wholesaler_id", "retailer_id") and f.arg_types[:2] == ("text", "text"):
                self.by_line(f)
            elif _is_batch(f):
                self.batch(f)
            else:
                raise PartitionSetupError(
                    f"credit.{f.name}({f.identity_args}) has no routing rule: its first arguments are not "
                    "(wholesaler_id, retailer_id) nor (wholesaler_ids, retailer_ids); add it to ROUTES in "
                    "client/pgcredit/partitions.py")
        for v in self.catalog.views:
            if v.name not in VIEWS:
                raise PartitionSetupError(f"view credit.{v.name} has no rule for merging it across partitions: "
                                          "add it to VIEWS in client/pgcredit/partitions.py")
            self.view(v, VIEWS[v.name])
        return (self.roles() + "\n\nSET ROLE credit_owner;\n\n" + "\n\n".join(self.out)
                + "\n\nRESET ROLE;\n")


def _require_portable(where: str, type_: str, composites: set[str]) -> None:
    """A signature may use the composite types the layer recreates, and
    built-in types; anything else of schema credit (a domain) is refused."""
    for name in re.findall(r"credit\.(\w+)", type_):
        if name not in composites:
            raise PartitionSetupError(f"{where} uses type credit.{name}, which the proxy cannot recreate")


def _is_batch(f: Function) -> bool:
    return f.arg_names[:2] == ("wholesaler_ids", "retailer_ids") and f.arg_types[:2] == ("text[]", "text[]")


def login_grants(catalog: Catalog) -> list[str]:
    """The partition functions the proxy's login needs EXECUTE on beyond its
    roles': the batches' check functions, and routed functions granted to no
    role (on the proxy, as on a partition, only their owner may call them)."""
    checks = [f"credit._{f.name}_check({f.identity_args})" for f in catalog.functions
              if _is_batch(f) and f"_{f.name}_check({f.identity_args})" in catalog.private]
    return checks + [f"credit.{f.name}({f.identity_args})" for f in catalog.functions if not f.grantees]


def generate_layer(catalog: Catalog, count: int) -> str:
    """The proxy's routing layer for `count` partitions, as one SQL script."""
    return _Writer(catalog, count).script()


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


# An ordering probe: list_lines' pages are merged on the proxy in the proxy's
# collation, so it must order retailer ids as the partitions do.
_ORDERING = """SELECT string_agg(x, '|' ORDER BY x) FROM (VALUES ('a'), ('B'), ('b'), ('-b'), ('e'), ('é'), ('f'),
    ('10'), ('9'), (' z'), ('a b'), ('ab'), ('A')) v(x)"""


def _credit_rows(conn: psycopg.Connection) -> str | None:
    """The name of a credit table that has rows, if any."""
    tables = conn.execute("SELECT c.oid::regclass::text FROM pg_class c WHERE c.relnamespace = "
                          "to_regnamespace('credit') AND c.relkind = 'r' AND c.relname <> 'currency' "
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


def _set_up_partition(dsn: str, index: int, count: int, root: Path, password_hash: str | None) -> str:
    """Records the partition's place and strides its identity sequences (ids
    index+1, index+1+count, ...: unique across partitions); creates the login
    the proxy uses. Returns the partition's hash fingerprint."""
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
    return fingerprint


# -- The proxy ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PartitionReport:
    partitions: list[MigrateReport]
    functions: int
    views: int
    layer_changed: bool


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
        report = migrate(dsn, root)
        reports.append(report)
        with psycopg.connect(dsn) as conn:
            verifier = conn.pgconn.encrypt_password(password.encode(), LOGIN.encode(), b"scram-sha-256").decode()
        fingerprints.add(_set_up_partition(dsn, i, count, root, verifier if first_setup else None))
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

    static = _read_sql("proxy.sql", root) + _read_sql("line_hash.sql", root)
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
            _drop_layer(proxy)
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
    return PartitionReport(reports, functions, len(catalogs[0].views), changed)


# The partitions' COMMENT ON of the API (the SQL reference), by the names the
# layer gives the same objects on the proxy.
_COMMENTS = """
SELECT 'FUNCTION', format('credit.%I(%s)', p.proname, pg_get_function_identity_arguments(p.oid)), d.description
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
            proxy.execute(sql.SQL("COMMENT ON {} {} IS {}").format(sql.SQL(kind), sql.SQL(name), sql.Literal(text)))


def _drop_layer(conn: psycopg.Connection) -> None:
    """Drops the generated objects (views, then functions, then types), each
    without CASCADE: an object of someone else's that depends on one of them
    stops the migration with PostgreSQL's own error naming it."""
    views = conn.execute("SELECT c.oid::regclass::text FROM pg_class c WHERE c.relkind = 'v' "
                         "AND c.relnamespace = 'credit'::regnamespace").fetchall()
    functions = conn.execute("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
         WHERE p.pronamespace IN ('credit'::regnamespace, 'credit_route'::regnamespace)
           AND p.proname NOT IN ('_partition_error', '_line_hash', '_line_hash_fingerprint',
                                 '_jsonb_counts_add', '_jsonb_counts_sum')""").fetchall()
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
