"""The proxy's routing layer, generated as one SQL script from a partition's
catalog and the rules (rules.py). For each API function: a PL/Proxy function
in credit_route, which says where the call runs, and a wrapper of the same
name, arguments and result in credit, which calls it and translates the
partitions' errors. For each view: a routed function returning every
partition's rows, and the view over it, merged by the view's rule.

The SQL is written from the templates below; the routing kinds only supply
the lines that differ (where the call runs, the wrapper's body). Its output
is pinned byte for byte by tests/unit/test_proxy_layer.py.
"""

from __future__ import annotations

import re

from .catalog import Catalog, Function, View
from .common import CLUSTER, PartitionSetupError
from .rules import RULES_FILE, ROUTES, VIEWS, EachPartition, OnAll, OnPartition, ViewRule, by_line, is_batch

INDENT = "    "

# A PL/Proxy function can only be created by the superuser (PL/Proxy is
# untrusted), who then hands it to credit_owner; everything else is created
# as credit_owner.
ROUTE = """\
RESET ROLE;
CREATE FUNCTION {signature} RETURNS {result}
LANGUAGE plproxy AS $plproxy$
    CLUSTER '{cluster}';
{body}
$plproxy$;
ALTER FUNCTION {signature} OWNER TO credit_owner;
REVOKE ALL ON FUNCTION {signature} FROM PUBLIC;
SET ROLE credit_owner;"""

# Errors a partition raised come back from PL/Proxy wrapped in its own
# message; credit._partition_error (sql/proxy/proxy.sql) raises them again as
# the partition did, naming the partition when it is unreachable.
WRAPPER = """\
{comment}CREATE FUNCTION {function}({args}) RETURNS {result}
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
{declare}BEGIN
{body}
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, {partition}, {count});
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION {function}({identity_args}) FROM PUBLIC;{grants}"""

ROLE = ("DO $role$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{name}') "
        "THEN CREATE ROLE {name} NOLOGIN; END IF; END $role$;")


def indented(lines: list[str], depth: int = 1) -> list[str]:
    return [INDENT * depth + line for line in lines]


def _aggregate_for(view: str, rule: ViewRule, column: str, type_: str) -> str:
    """The aggregate that merges one column of per-partition aggregate rows."""
    merge = dict(rule.merge)
    if column in merge:
        return merge[column]
    if type_ in ("bigint", "integer", "smallint", "numeric") or type_.startswith("numeric("):
        return "sum"
    raise PartitionSetupError(
        f"the proxy does not know how to merge column {column} ({type_}) of the aggregate view credit.{view}: "
        f"add it to the view's merge rule in VIEWS, {RULES_FILE}")


def _require_portable(where: str, type_: str, composites: set[str]) -> None:
    """A signature may use the composite types the layer recreates, and
    built-in types; anything else of schema credit (a domain) is refused."""
    for name in re.findall(r"credit\.(\w+)", type_):
        if name not in composites:
            raise PartitionSetupError(f"{where} uses type credit.{name}, which the proxy cannot recreate")


def _is_batch(f: Function) -> bool:
    return is_batch(f.arg_names, f.arg_types)


def _check_of(f: Function) -> str:
    """The partition function that validates a whole batch: name(identity args)."""
    return f"_{f.name}_check({f.identity_args})"


class _Layer:
    """Builds the layer for one catalog and partition count: each routing kind
    adds its statements to `out`."""

    def __init__(self, catalog: Catalog, count: int):
        self.catalog = catalog
        self.count = count
        self.out: list[str] = []

    # -- Names and the pieces of statements

    def ident(self, name: str) -> str:
        if re.fullmatch(r"[a-z_][a-z0-9_]*", name) and name not in self.catalog.keywords:
            return name
        return '"' + name.replace('"', '""') + '"'

    def columns(self, cols) -> str:
        return ", ".join(f"{self.ident(n)} {t}" for n, t in cols)

    def row_columns(self, cols) -> str:
        return ", ".join(f"px_row.{self.ident(n)}" for n, _ in cols)

    def call_args(self, f: Function) -> str:
        return ", ".join(self.ident(a) for a in f.arg_names)

    def line_hash(self, w: str, r: str) -> str:
        return f"credit._line_hash({self.ident(w)}, {self.ident(r)})"

    def line_partition(self, w: str, r: str) -> str:
        return f"{self.line_hash(w, r)} & {self.count - 1}"

    def result_of(self, f: Function, call: str, tail: str = "") -> str:
        """The statement that returns what `call` returns, as f returns it."""
        if f.returns_set:
            return f"RETURN QUERY SELECT * FROM {call} px_row{tail};"
        return f"RETURN {call};"

    # -- The two functions of every route

    def route(self, name: str, args: str, result: str, body: list[str]) -> None:
        """The PL/Proxy function credit_route.name: `body` says where it runs."""
        self.out.append(ROUTE.format(signature=f"credit_route.{self.ident(name)}({args})", result=result,
                                     cluster=CLUSTER, body="\n".join(indented(body))))

    def wrapper(self, name: str, args: str, identity_args: str, result: str, body: list[str], partition: str,
                grantees, declare: tuple[str, ...] = (), comment: str = "") -> None:
        """The API function credit.name. partition: the SQL expression of the
        partition the call went to (NULL when several), for error messages."""
        function = f"credit.{self.ident(name)}"
        self.out.append(WRAPPER.format(
            comment=f"-- {comment}\n" if comment else "", function=function, args=args, result=result,
            declare="".join(line + "\n" for line in indented(list(declare))), body="\n".join(indented(body)),
            partition=partition, count=self.count, identity_args=identity_args,
            grants="".join(f"\nGRANT EXECUTE ON FUNCTION {function}({identity_args}) TO {g};" for g in grantees)))

    # -- The routing kinds

    def by_line(self, f: Function) -> None:
        w, r = f.arg_names[:2]
        self.route(f.name, f.identity_args, f.result,
                   [f"RUN ON {self.line_hash(w, r)};", f"TARGET credit.{self.ident(f.name)};"])
        self.wrapper(f.name, f.args, f.identity_args, f.result,
                     [self.result_of(f, f"credit_route.{self.ident(f.name)}({self.call_args(f)})")],
                     self.line_partition(w, r), f.grantees,
                     comment="Runs on the partition of the line (wholesaler_id, retailer_id).")

    def on_all(self, f: Function, rule: OnAll) -> None:
        if not f.returns_set:
            raise PartitionSetupError(f"credit.{f.name} must return a set to run on every partition")
        for arg in (rule.limit_arg, *(rule.line_args or ())):
            if arg and arg not in f.arg_names:
                raise PartitionSetupError(f"credit.{f.name} has no argument {arg}: update ROUTES in "
                                          f"{RULES_FILE} to its new signature")
        names = {n for n, _ in f.columns}
        if not set(rule.order_by) <= names:
            raise PartitionSetupError(f"credit.{f.name} returns no column {set(rule.order_by) - names}: "
                                      f"update ROUTES in {RULES_FILE}")
        target = f"credit.{self.ident(f.name)}"
        if rule.also:
            cols = self.row_columns(f.columns)
            self.route(f.name, f.identity_args, f.result,
                       ["RUN ON ALL;", f"SELECT {cols} FROM {target}({self.call_args(f)}) px_row",
                        f"UNION ALL SELECT {cols} FROM {rule.also} px_row;"])
        else:
            self.route(f.name, f.identity_args, f.result, ["RUN ON ALL;", f"TARGET {target};"])
        tail = ""
        if rule.order_by:
            tail += " ORDER BY " + ", ".join(f"px_row.{self.ident(c)}" for c in rule.order_by)
        if rule.limit_arg:
            # At least 1: with LIMIT 0 the rows would never be asked for, and
            # the partitions' own refusal of a bad page size would not be seen.
            tail += f" LIMIT greatest({self.ident(rule.limit_arg)}, 1)"
        every = self.result_of(f, f"credit_route.{self.ident(f.name)}({self.call_args(f)})", tail)
        body, partition = [every], "NULL"
        if rule.line_args:
            w, r = rule.line_args
            one = f"{f.name}_line"
            self.route(one, f.identity_args, f.result, [f"RUN ON {self.line_hash(w, r)};", f"TARGET {target};"])
            given = f"{self.ident(w)} IS NOT NULL AND {self.ident(r)} IS NOT NULL"
            body = [f"IF {given} THEN",
                    *indented([self.result_of(f, f"credit_route.{self.ident(one)}({self.call_args(f)})")]),
                    "ELSE",
                    *indented([every]),
                    "END IF;"]
            partition = f"CASE WHEN {given} THEN {self.line_partition(w, r)} END"
        self.wrapper(f.name, f.args, f.identity_args, f.result, body, partition, f.grantees,
                     comment="Runs on every partition; the rows are merged as a single server returns them.")

    def each_partition(self, f: Function, rule: EachPartition) -> None:
        if f.returns_set or f.columns or (rule.budget_arg and rule.budget_arg not in f.arg_names):
            raise PartitionSetupError(f"credit.{f.name} no longer fits its EachPartition rule: update ROUTES in "
                                      f"{RULES_FILE}")
        self.route(f.name, f"px_partition integer, {f.identity_args}", f.result,
                   ["RUN ON px_partition;", f"SELECT credit.{self.ident(f.name)}({self.call_args(f)});"])
        budget = self.ident(rule.budget_arg) if rule.budget_arg else None
        args = ", ".join(f"{budget} - px_done" if a == rule.budget_arg else self.ident(a) for a in f.arg_names)
        # A WHILE loop: a FOR loop's variable would not be visible to the exception handler.
        body = [f"WHILE px_partition < {self.count} LOOP",
                *indented([f"px_done := px_done + credit_route.{self.ident(f.name)}(px_partition, {args});",
                           *([f"EXIT WHEN px_done >= {budget};"] if budget else []),
                           "px_partition := px_partition + 1;"]),
                "END LOOP;",
                "RETURN px_done;"]
        self.wrapper(f.name, f.args, f.identity_args, f.result, body, "px_partition", f.grantees,
                     declare=("px_partition integer := 0;", f"px_done {f.result} := 0;"),
                     comment=(f"Each partition in turn gets what is left of {rule.budget_arg}." if budget
                              else "Runs on each partition in turn; returns the sum."))

    def on_partition(self, f: Function, rule: OnPartition) -> None:
        if not f.returns_set or rule.arg in f.arg_names:
            raise PartitionSetupError(f"credit.{f.name} no longer fits its OnPartition rule: update ROUTES in "
                                      f"{RULES_FILE}")
        arg = self.ident(rule.arg)
        self.route(f.name, f"px_partition integer, {f.identity_args}", f.result,
                   ["RUN ON px_partition;",
                    f"SELECT {self.row_columns(f.columns)} FROM credit.{self.ident(f.name)}({self.call_args(f)}) px_row;"])
        # After arguments with defaults, so with one of its own: NULL, refused.
        body = [f"IF {arg} IS NULL OR {arg} NOT BETWEEN 0 AND {self.count - 1} THEN",
                *indented([f"RAISE USING ERRCODE = '22023', MESSAGE = format('{rule.arg} must be between 0 and "
                           f"{self.count - 1} (credit.partitions() lists them), got %s', coalesce({arg}::text, 'NULL'));"]),
                "END IF;",
                self.result_of(f, f"credit_route.{self.ident(f.name)}({arg}, {self.call_args(f)})")]
        self.wrapper(f.name, f"{f.args}, {arg} integer DEFAULT NULL", f"{f.identity_args}, {arg} integer", f.result,
                     body, arg, f.grantees, comment=f"Runs on the partition named by {rule.arg}.")

    def partitions(self) -> None:
        """credit.partitions(): what a reader of per-partition data passes as
        `partition`, for whoever may call such a function."""
        grantees = sorted({g for f in self.catalog.functions if isinstance(ROUTES.get(f.name), OnPartition)
                           for g in f.grantees})
        self.out.append("\n".join([
            "CREATE FUNCTION credit.partitions() RETURNS TABLE(partition integer)",
            f"LANGUAGE sql IMMUTABLE AS $$ SELECT generate_series(0, {self.count - 1}) $$;",
            "REVOKE ALL ON FUNCTION credit.partitions() FROM PUBLIC;",
            *(f"GRANT EXECUTE ON FUNCTION credit.partitions() TO {g};" for g in grantees),
            "COMMENT ON FUNCTION credit.partitions() IS $doc$The partitions of this deployment, 0 to N-1: one "
            "event feed each (events_after's partition).$doc$;"]))

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
        check = _check_of(f)
        if check not in self.catalog.private:
            self.wrapper(f.name, f.args, f.identity_args, f.result, [
                f"RAISE USING ERRCODE = '0A000', MESSAGE = 'credit.{f.name} is not available through the proxy: "
                f"its partitions have no credit.{check} to validate a whole batch before any partition commits';"],
                "NULL", f.grantees)
            return
        check_name = f"_{f.name}_check"
        self.route(check_name, f"px_partition integer, {f.identity_args}", "void",
                   ["RUN ON px_partition;", f"SELECT credit.{check_name}({self.call_args(f)});"])
        arrays = [a for a, t in zip(f.arg_names, f.arg_types) if t.endswith("[]")]
        w, r = f.arg_names[:2]
        self.route(f.name, f"px_items integer[], {f.identity_args}", f.result,
                   [f"SPLIT px_items, {', '.join(self.ident(a) for a in arrays)};",
                    f"RUN ON {self.line_hash(w, r)};",
                    f"SELECT (px_items)[px_row.item] AS item, {self.row_columns(f.columns[1:])}",
                    f"  FROM credit.{self.ident(f.name)}({self.call_args(f)}) px_row;"])
        # PL/Proxy splits only arrays of one length: a NULL array (allowed where
        # NULL means "the default for every item") becomes NULL elements.
        n = f"cardinality({self.ident(w)})"
        args = ", ".join(
            f"coalesce({self.ident(a)}, array_fill(NULL::{t[:-2]}, ARRAY[{n}]))" if a in arrays[2:] else self.ident(a)
            for a, t in zip(f.arg_names, f.arg_types))
        # Validation runs where the first item goes (any partition would do: it reads no data).
        first = f"credit._line_hash({self.ident(w)}[1], {self.ident(r)}[1]) & {self.count - 1}"
        body = [f"PERFORM credit_route.{self.ident(check_name)}({first}, {self.call_args(f)});",
                f"RETURN QUERY SELECT * FROM credit_route.{self.ident(f.name)}(",
                f"    ARRAY(SELECT generate_series(1, {n})), {args}) px_row ORDER BY px_row.item;"]
        self.wrapper(f.name, f.args, f.identity_args, f.result, body, "NULL", f.grantees,
                     comment="Split by partition; validated as a whole first; rows in item order.")

    def view(self, v: View, rule: ViewRule) -> None:
        rows = f"_{v.name}_rows"  # the wrapper returning every partition's rows
        result = f"TABLE({self.columns(v.columns)})"
        self.route(f"{v.name}_rows", "", result,
                   ["RUN ON ALL;", f"SELECT {self.row_columns(v.columns)} FROM credit.{self.ident(v.name)} px_row;"])
        self.wrapper(rows, "", "", result,
                     [f"RETURN QUERY SELECT * FROM credit_route.{self.ident(v.name + '_rows')}() px_row;"],
                     "NULL", v.grantees, comment=f"The rows of credit.{v.name} on every partition.")
        if rule.aggregate:
            select = ", ".join(
                self.ident(n) if n in rule.group_by
                else f"{_aggregate_for(v.name, rule, n, t)}({self.ident(n)})::{t} AS {self.ident(n)}"
                for n, t in v.columns)
            group = " GROUP BY " + ", ".join(self.ident(g) for g in rule.group_by) if rule.group_by else ""
            having = f" HAVING count(*) = {self.count}" if rule.every_partition else ""
            query = f"SELECT {select} FROM credit.{self.ident(rows)}(){group}{having}"
        else:
            query = f"SELECT * FROM credit.{self.ident(rows)}()"
        # A view checks the functions it calls against its reader: the merge aggregates too.
        aggregates = {a for _, a in rule.merge if a.startswith("credit.")} if rule.aggregate else set()
        name = f"credit.{self.ident(v.name)}"
        self.out.append("\n".join([f"CREATE VIEW {name} AS {query};",
                                   *(f"GRANT SELECT ON {name} TO {g};" for g in v.grantees),
                                   *(f"GRANT EXECUTE ON FUNCTION {a}(jsonb) TO {g};"
                                     for a in sorted(aggregates) for g in v.grantees)]))

    # -- The whole script

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
            out.append(ROLE.format(name=name))
        out += [f"GRANT USAGE ON SCHEMA credit TO {g};" for g in c.schema_usage]
        return "\n".join(out)

    def function(self, f: Function) -> None:
        """f through the proxy, by its rule in ROUTES or a default rule."""
        rule = ROUTES.get(f.name)
        if isinstance(rule, OnAll):
            self.on_all(f, rule)
        elif isinstance(rule, EachPartition):
            self.each_partition(f, rule)
        elif isinstance(rule, OnPartition):
            self.on_partition(f, rule)
        elif by_line(f.arg_names, f.arg_types):
            self.by_line(f)
        elif _is_batch(f):
            self.batch(f)
        else:
            raise PartitionSetupError(
                f"credit.{f.name}({f.identity_args}) has no routing rule: its first arguments are not "
                f"(wholesaler_id, retailer_id) nor (wholesaler_ids, retailer_ids); add it to ROUTES in {RULES_FILE}")

    def script(self) -> str:
        known = {name for name, _ in self.catalog.types}
        for name, cols in self.catalog.types:
            for col, type_ in cols:
                _require_portable(f"credit.{name}.{col}", type_, known)
            self.out.append(f"CREATE TYPE credit.{self.ident(name)} AS ({self.columns(cols)});")
        for f in self.catalog.functions:
            for type_ in (*f.arg_types, f.result):
                _require_portable(f"credit.{f.name}", type_, known)
            self.function(f)
        self.partitions()
        for v in self.catalog.views:
            if v.name not in VIEWS:
                raise PartitionSetupError(f"view credit.{v.name} has no rule for merging it across partitions: "
                                          f"add it to VIEWS in {RULES_FILE}")
            self.view(v, VIEWS[v.name])
        return self.roles() + "\n\nSET ROLE credit_owner;\n\n" + "\n\n".join(self.out) + "\n\nRESET ROLE;\n"


def generate_layer(catalog: Catalog, count: int) -> str:
    """The proxy's routing layer for `count` partitions, as one SQL script."""
    return _Layer(catalog, count).script()


def login_grants(catalog: Catalog) -> list[str]:
    """The partition functions the proxy's login needs EXECUTE on beyond its
    roles': the batches' check functions, and routed functions granted to no
    role (on the proxy, as on a partition, only their owner may call them)."""
    checks = [f"credit.{_check_of(f)}" for f in catalog.functions if _is_batch(f) and _check_of(f) in catalog.private]
    return checks + [f"credit.{f.name}({f.identity_args})" for f in catalog.functions if not f.grantees]
