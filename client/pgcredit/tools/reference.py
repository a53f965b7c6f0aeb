"""`pgcredit reference`: the SQL reference (docs/SQL-REFERENCE.md), generated
from the catalog of a migrated database.

The text of each function, result type and view is its COMMENT ON, kept
beside its definition in sql/functions and sql/views (reloaded on every
migrate), so psql's \\df+ shows what the document says. What the catalog
knows without help (signatures, defaults, result columns and their types,
who may call what) is read from it, never written twice.

A function's comment is its description, then sections, each a line of its
own starting with its name:

    Arguments:
      wholesaler_id, retailer_id: the line.
      amount: what to hold: greater than zero, at most 2 decimal places.
    Columns:                 (RETURNS TABLE only: a composite type's columns
      item: ...               carry comments of their own)
    Returns: ...             (a scalar result)
    Codes: ok, line_not_found, ...
    Raises:
      22023: an argument is invalid ...

An entry's text may go on over lines indented further. Codes and Raises are
what a caller must handle; tests/integration/test_reference.py checks them
against the code literals and ERRCODEs that the function's source (and what
it calls) can return, so the list cannot drift from the code.

The output depends on nothing but the catalog (no time, no server version,
no database name): objects in name order, so two servers give the same file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.rows import tuple_row

SECTIONS = ("Arguments", "Columns", "Returns", "Codes", "Raises")
_HEADER = re.compile(rf"^({'|'.join(SECTIONS)}):(.*)$")
COMMAND = "./dev reference --out docs/SQL-REFERENCE.md"


@dataclass
class Comment:
    """A COMMENT ON, split into its description and its sections."""

    description: str = ""
    entries: dict[str, list[tuple[tuple[str, ...], str]]] = field(default_factory=dict)  # Arguments, Columns, Raises
    inline: dict[str, str] = field(default_factory=dict)  # Returns, Codes
    problems: list[str] = field(default_factory=list)

    @property
    def codes(self) -> list[str] | None:
        if "Codes" not in self.inline:
            return None
        return [c.strip() for c in self.inline["Codes"].split(",") if c.strip()]

    @property
    def raises(self) -> dict[str, str]:
        return {key: text for keys, text in self.entries.get("Raises", []) for key in keys}

    def described(self, section: str) -> dict[str, str]:
        return {key: text for keys, text in self.entries.get(section, []) for key in keys}


def parse_comment(text: str | None) -> Comment:
    out = Comment()
    if not text:
        return out
    description: list[str] = []
    section = None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            section, rest = header.group(1), header.group(2).strip()
            if section in out.entries or section in out.inline:
                out.problems.append(f"section {section} appears twice")
            if bool(rest) != (section in ("Codes", "Returns")):
                out.problems.append(f"{section}: " + ("its text goes on the same line" if not rest
                                                      else "one entry per line below it, 'name: text'"))
            if rest:
                out.inline[section] = rest
            else:
                out.entries[section] = []
        elif section is None:
            description.append(line)
        elif not line.strip():
            continue
        elif section in out.inline:
            if not line.startswith("  "):
                out.problems.append(f"{section}: a line that goes on must be indented: {line!r}")
            out.inline[section] += " " + line.strip()
        elif line.startswith("  ") and not line.startswith("   "):
            keys, sep, rest = line.strip().partition(":")
            if not sep:
                out.problems.append(f"{section}: an entry is 'name: text', got {line!r}")
                continue
            out.entries[section].append((tuple(k.strip() for k in keys.split(",")), rest.strip()))
        elif line.startswith("   ") and out.entries[section]:
            keys, previous = out.entries[section][-1]
            out.entries[section][-1] = (keys, (previous + " " + line.strip()).strip())
        else:
            out.problems.append(f"{section}: entries are indented by two spaces: {line!r}")
    out.problems += [f"{section}: {', '.join(keys)} has no text" for section, entries in out.entries.items()
                     for keys, text in entries if not text]
    out.description = "\n".join(description).strip()
    return out


# -- What the catalog says ---------------------------------------------------------

@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str | None


@dataclass(frozen=True)
class Function:
    name: str
    identity: str  # pg_get_function_identity_arguments
    signature: str  # credit.name(arguments with defaults) -> result
    arguments: tuple[tuple[str, str, str | None], ...]  # name, type, default
    result: str  # pg_get_function_result
    result_type: str | None  # the composite type returned, if any
    returns_set: bool
    columns: tuple[Column, ...]  # result columns; empty for a scalar
    comment: str | None
    roles: tuple[str, ...]
    owner: str
    settings: tuple[str, ...]  # proconfig: search_path, lock_timeout


@dataclass(frozen=True)
class Relation:
    """A result type or a view."""

    name: str
    columns: tuple[Column, ...]
    comment: str | None
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalog:
    functions: tuple[Function, ...]
    types: tuple[Relation, ...]
    views: tuple[Relation, ...]


# Grants to a login role (the partitioned deployment's proxy login) are how a
# deployment runs, not who the API is for: the reference names the NOLOGIN roles.
_GRANTEES = """
array(SELECT r.rolname FROM aclexplode(coalesce({acl}, acldefault('{kind}', {owner}))) a
        JOIN pg_roles r ON r.oid = a.grantee
       WHERE a.privilege_type = '{privilege}' AND a.grantee <> {owner} AND NOT r.rolcanlogin
       ORDER BY r.rolname)"""

_FUNCTIONS = f"""
SELECT p.oid, p.proname, pg_get_function_identity_arguments(p.oid), pg_get_function_arguments(p.oid),
       pg_get_function_result(p.oid), p.proretset,
       coalesce(p.proargnames, '{{}}'), coalesce(p.proargmodes::text[], '{{}}'),
       array(SELECT format_type(t, NULL) FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]))
                    WITH ORDINALITY u(t, i) ORDER BY i),
       CASE WHEN t.typtype = 'c' THEN format_type(p.prorettype, NULL) END, t.typrelid,
       obj_description(p.oid, 'pg_proc'),
       {_GRANTEES.format(acl='p.proacl', kind='f', owner='p.proowner', privilege='EXECUTE')},
       pg_get_userbyid(p.proowner), coalesce(p.proconfig, '{{}}')
  FROM pg_proc p JOIN pg_type t ON t.oid = p.prorettype
 WHERE p.pronamespace = 'credit'::regnamespace AND p.prokind = 'f' AND p.proname !~ '^_'
"""

# A column of a domain type shows the domain's base type: the domain is how a
# table column is checked, nothing a reader passes or reads (and the
# partitioned deployment's proxy has no domains).
_COLUMNS = """
SELECT a.attname, CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod)
                       ELSE format_type(a.atttypid, a.atttypmod) END,
       col_description(a.attrelid, a.attnum)
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""

_TYPES = """
SELECT format_type(t.oid, NULL), t.typrelid, obj_description(t.oid, 'pg_type')
  FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid
 WHERE t.typnamespace = 'credit'::regnamespace AND c.relkind = 'c'
   -- A type no function returns is not API (a retired result type, kept for one release).
   AND EXISTS (SELECT FROM pg_proc p WHERE p.prorettype = t.oid)
"""

_VIEWS = f"""
SELECT 'credit.' || c.relname, c.oid, obj_description(c.oid, 'pg_class'),
       {_GRANTEES.format(acl='c.relacl', kind='r', owner='c.relowner', privilege='SELECT')}
  FROM pg_class c WHERE c.relnamespace = 'credit'::regnamespace AND c.relkind = 'v'
"""


def _columns(conn, relid: int) -> tuple[Column, ...]:
    return tuple(Column(*row) for row in conn.execute(_COLUMNS, [relid]).fetchall())


def read_catalog(connection: psycopg.Connection) -> Catalog:
    """The public API of schema credit: functions whose names do not start
    with an underscore (those are internal), composite types, views."""
    conn = connection.cursor(row_factory=tuple_row)
    functions = []
    for (oid, name, identity, arguments, result, returns_set, names, modes, types, result_type, relid,
         comment, roles, owner, settings) in conn.execute(_FUNCTIONS).fetchall():
        modes = modes or ["i"] * len(types)
        defaults = [conn.execute("SELECT pg_get_function_arg_default(%s, %s)", [oid, i]).fetchone()[0]
                    for i in range(1, len(types) + 1)]
        args = tuple((n, t, d) for n, m, t, d in zip(names, modes, types, defaults) if m in ("i", "b", "v"))
        if relid:
            columns = _columns(conn, relid)
        else:
            columns = tuple(Column(n, t, None) for n, m, t in zip(names, modes, types) if m in ("o", "t", "b"))
        functions.append(Function(name, identity, f"credit.{name}({arguments}) → {result}", args, result,
                                  result_type, returns_set, columns, comment, tuple(roles), owner,
                                  tuple(settings)))
    types = tuple(Relation(name, _columns(conn, relid), comment)
                  for name, relid, comment in conn.execute(_TYPES).fetchall())
    views = tuple(Relation(name, _columns(conn, oid), comment, tuple(roles))
                  for name, oid, comment, roles in conn.execute(_VIEWS).fetchall())
    # Sorted here, not by ORDER BY: the database's collation must not decide the order.
    return Catalog(tuple(sorted(functions, key=lambda f: (f.name, f.identity))),
                   tuple(sorted(types, key=lambda t: t.name)), tuple(sorted(views, key=lambda v: v.name)))


# -- The document -------------------------------------------------------------------

PREAMBLE = f"""\
# pgcredit SQL reference

Every function, result type and view of schema `credit` that applications
and DBAs use. Generated from the catalog of a migrated database by
`pgcredit reference` (in a clone: `{COMMAND}`); do not edit it by hand. The
text is each object's `COMMENT ON`, kept beside its definition in
`sql/functions` and `sql/views`, so psql shows the same (`\\df+ credit.*`,
`\\dT+ credit.*`, `\\d+ credit.line_summary`). A test fails when this file
and the catalog differ.

## How every function behaves

- **Calling.** `SELECT * FROM credit.fn(...)` from any language; arguments
  by position or by name (`amount => 10.00`). Functions whose names start
  with an underscore are internal, not part of the API.
- **Codes, not exceptions.** A business outcome is a result code: every
  function that changes something returns one row whose first column is
  `code` (`ok` or a refusal, listed under each function and
  [below](#codes)). A refusal changes nothing (a refused reservation is
  logged for monitoring). Only invalid input and infrastructure problems
  raise an SQL error.
- **Idempotency keys.** `order_ref`, `payment_ref`, `reversal_ref` and
  `adjustment_ref` are unique per line, for ever. Sending a call again with
  the same key and amount returns `ok`, `replayed = true` and the original
  ids, with the line's current figures; the same key with another amount
  returns `exists_with_different_amount` and changes nothing. The replay
  check comes first (a replay succeeds even on a line blocked since).
- **Invalid input** raises SQLSTATE `22023` (class 22) with a message that
  names the argument or the bulk call's element (`amounts[7]`), and nothing
  is written. Ids and keys are non-NULL, not blank, at most 200 characters,
  without control characters; amounts are finite numbers, greater than zero
  unless said otherwise, at most 10^15, with at most 2 decimal places
  (10.005 is refused, not rounded); reasons are non-blank text of at most
  1,000 characters.
- **Money** is `numeric`; money in results has scale 2 (`numeric(1000,2)`:
  `0.00`, never `0`). `available = credit_limit - reserved - outstanding`,
  where `credit_limit` is the limit in force (a temporary limit until its
  end), `reserved` counts active holds not past their expiry, and
  `outstanding` is DEBIT - CREDIT - REVERSAL + ADJUSTMENT. An overpayment
  makes `outstanding` negative and `available` larger than the limit.
- **Lock waits** are bounded: 2 s by default, changed without editing the
  functions by `ALTER DATABASE shop SET credit.lock_timeout = '5s'`. Past
  the bound the call raises `55P03`. `55P03`, `40P01` (deadlock), `40001`
  and a lost connection are safe to retry with the same key (the Python
  client does).
- **An answer must come without a warning.** With a synchronous standby, a
  call whose wait for the standby is cancelled (`pg_cancel_backend`, a
  client-side cancel) is committed on the primary only, and the server
  still returns its row, with a notice of severity `WARNING` and SQLSTATE
  `01000` ("canceling wait for synchronous replication due to user request"
  in English; match the SQLSTATE, not the text: no function here raises a
  warning of its own). That row is no answer: the outcome is unknown, as
  after a lost connection. Call again with the same key once a server
  answers; every replay waits for the standby too, so its answer is durable.
  The Python client raises `OutcomeUnknown` (README, "From SQL").
- **Roles.** `credit_owner` (no login) owns everything. `credit_app` may
  call the API functions and touches no table; `credit_auditor` may read the
  views and call the reads (`reconcile`, `statement`, `aging`, ...);
  `credit_monitor` may read the aggregate monitoring views only; PUBLIC may
  do nothing. Each entry below names the roles the catalog grants it to.
- **A partitioned deployment** ([PARTITIONING.md](../PARTITIONING.md))
  serves the same functions, arguments, results and codes through its proxy.
"""


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _anchor(name: str) -> str:
    return name.removeprefix("credit.")


def _columns_table(columns, described: dict[str, str] | None = None) -> list[str]:
    out = ["| column | type | |", "|---|---|---|"]
    for c in columns:
        text = c.comment if described is None else described.get(c.name)
        out.append(f"| `{c.name}` | `{c.type}` | {_cell(text)} |")
    return out


def _roles(roles: tuple[str, ...], owner: str) -> str:
    names = [f"`{r}`" for r in roles] + [f"`{owner}` (owner)"]
    return ", ".join(names)


def _result_summary(f: Function) -> str:
    if f.result_type:
        link = f"[`{f.result_type}`](#{_anchor(f.result_type)})"
        return f"set of {link}" if f.returns_set else link
    if f.columns:
        return ("set of rows" if f.returns_set else "one row") + " (" + ", ".join(c.name for c in f.columns) + ")"
    return f"`{f.result}`"


# Codes that share an exception class, whose docstring says more than one of them.
_MEANINGS = {
    "ok": "Done; or the same call was done before and this is its replay (`replayed = true`): nothing changed.",
    "exists_with_different_amount": "The key was used before with another amount; nothing changed.",
    "exists_with_different_terms": "The line exists with other terms than the call's (another limit, currency "
                                   "or payment terms); nothing changed.",
}


def code_meanings() -> dict[str, str]:
    """What each code means: the first paragraph of the exception the Python
    client raises for it (pgcredit.errors), unless said above."""
    from ..errors import _BY_CODE

    meanings = {code: " ".join((cls.__doc__ or "").split("\n\n")[0].split()) for code, cls in _BY_CODE.items()}
    return {**meanings, **_MEANINGS}


def render(catalog: Catalog) -> str:
    parsed = {f: parse_comment(f.comment) for f in catalog.functions}
    returned_by: dict[str, list[str]] = {}
    for f in catalog.functions:
        if f.result_type:
            returned_by.setdefault(f.result_type, []).append(f.name)
    out = [PREAMBLE]

    out += ["## Functions", "", "| function | result | who may call it |", "|---|---|---|"]
    for f in catalog.functions:
        out.append(f"| [`{f.name}`](#{f.name}) | {_result_summary(f)} | {_roles(f.roles, f.owner)} |")
    for f in catalog.functions:
        c = parsed[f]
        out += ["", f"### {f.name}", "", "```sql", f.signature, "```", "", c.description or "(no description)", "",
                f"**Who may call it:** {_roles(f.roles, f.owner)}."]
        if f.arguments:
            described = c.described("Arguments")
            out += ["", "| argument | type | default | |", "|---|---|---|---|"]
            out += [f"| `{n}` | `{t}` | {f'`{_cell(d)}`' if d else ''} | {_cell(described.get(n))} |"
                    for n, t, d in f.arguments]
        out.append("")
        if f.result_type:
            many = "a set of rows" if f.returns_set else "one row"
            out += [f"**Returns:** {many} of [`{f.result_type}`](#{_anchor(f.result_type)}):", ""]
            out += _columns_table(f.columns)
        elif f.columns:
            out += ["**Returns:** a set of rows:" if f.returns_set else "**Returns:** one row:", ""]
            out += _columns_table(f.columns, c.described("Columns"))
        else:
            out.append(f"**Returns:** `{f.result}`" + (f": {_cell(c.inline['Returns'])}" if "Returns" in c.inline
                                                      else "."))
        if c.codes is not None:
            out += ["", "**Codes:** " + ", ".join(f"[`{code}`](#codes)" for code in c.codes) + "."]
        if c.raises:
            out += ["", "| SQLSTATE | raised when |", "|---|---|"]
            out += [f"| `{state}` | {_cell(text)} |" for state, text in c.raises.items()]

    out += ["", "## Result types", "",
            "Composite types that functions return; `SELECT * FROM credit.fn(...)` reads their columns."]
    for t in catalog.types:
        name = _anchor(t.name)
        returners = ", ".join(f"[`{u}`](#{u})" for u in returned_by.get(t.name, []))
        out += ["", f"### {name}", "", t.comment or "(no description)", ""]
        if returners:
            out += [f"**Returned by:** {returners}.", ""]
        out += _columns_table(t.columns)

    out += ["", "## Views"]
    for v in catalog.views:
        out += ["", f"### {_anchor(v.name)}", "", v.comment or "(no description)", "",
                f"**Who may read it:** {', '.join(f'`{r}`' for r in v.roles) or 'its owner only'}.", ""]
        out += _columns_table(v.columns)

    meanings = code_meanings()
    users: dict[str, list[str]] = {}
    for f in catalog.functions:
        for code in parsed[f].codes or []:
            users.setdefault(code, []).append(f.name)
    out += ["", "## Codes", "", "| code | meaning | returned by |", "|---|---|---|"]
    for code in sorted(users, key=lambda c: (c != "ok", c)):
        out.append(f"| `{code}` | {_cell(meanings.get(code))} | "
                   + ", ".join(f"[`{u}`](#{u})" for u in users[code]) + " |")
    return "\n".join(out) + "\n"


def generate(conninfo: str) -> str:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return render(read_catalog(conn))


def run(conninfo: str | None, out: str) -> int:
    """The reference of the database at conninfo; without one, of this
    installation's SQL migrated into a throwaway server."""
    if conninfo:
        text = generate(conninfo)
    else:
        from ..migrate import migrate
        from . import embedded

        with embedded.throwaway() as server:
            dsn = server.ensure_database("pgcredit")
            migrate(dsn)
            text = generate(dsn)
    if out == "-":
        print(text, end="")
    else:
        Path(out).write_text(text, encoding="utf-8")
    return 0
