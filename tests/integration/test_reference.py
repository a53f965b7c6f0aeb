"""The SQL reference: every public function, result type and view carries its
COMMENT ON; the codes and SQLSTATEs a comment lists are those its source can
return; and docs/SQL-REFERENCE.md is what the catalog generates, on every
server version the suite runs on."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest
from psycopg.rows import tuple_row

from pgcredit.errors import _BY_CODE
from pgcredit.tools import cli
from pgcredit.tools.reference import COMMAND, code_meanings, parse_comment, read_catalog, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "SQL-REFERENCE.md"
SQLSTATE = re.compile(r"^[0-9A-Z]{5}$")


def test_the_committed_reference_is_what_the_catalog_generates(conn):
    generated = render(read_catalog(conn))
    committed = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if generated != committed:
        diff = "".join(list(difflib.unified_diff(committed.splitlines(True), generated.splitlines(True),
                                                 "docs/SQL-REFERENCE.md (committed)", "generated"))[:60])
        pytest.fail(f"docs/SQL-REFERENCE.md is not what the catalog generates: run `{COMMAND}` and commit "
                    f"it.\n{diff}")


def test_pgcredit_reference_writes_the_document(dsn, tmp_path, conn):
    out = tmp_path / "ref.md"
    assert cli.main(["reference", "--dsn", dsn, "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render(read_catalog(conn))


def documentation_problems(conn) -> list[str]:
    """What a reader of the reference would miss: an object or column without
    its text, an argument or result column not described, a malformed section."""
    catalog = read_catalog(conn)
    problems = []
    for f in catalog.functions:
        where = f"credit.{f.name}({f.identity})"
        c = parse_comment(f.comment)
        problems += [f"{where}: {p}" for p in c.problems]
        if not c.description:
            problems.append(f"{where}: no COMMENT ON FUNCTION (or no description before its sections)")
        args = {n for n, _, _ in f.arguments}
        described = set(c.described("Arguments"))
        if args != described:
            problems.append(f"{where}: Arguments describes {sorted(described)}, the function takes {sorted(args)}")
        if f.columns and not f.result_type:
            names = {col.name for col in f.columns}
            if set(c.described("Columns")) != names:
                problems.append(f"{where}: Columns describes {sorted(c.described('Columns'))}, "
                                f"the function returns {sorted(names)}")
        elif "Columns" in c.entries:
            problems.append(f"{where}: Columns is for RETURNS TABLE; a composite type's columns carry comments")
        if not f.columns and "Returns" not in c.inline:
            problems.append(f"{where}: a scalar result needs a 'Returns:' line saying what it is")
        has_code = any(col.name == "code" for col in f.columns)
        if has_code != (c.codes is not None):
            problems.append(f"{where}: " + ("a 'Codes:' line is missing" if has_code
                                           else "'Codes:' on a function without a code column"))
        for state in c.raises:
            if not SQLSTATE.match(state):
                problems.append(f"{where}: Raises lists {state!r}, not an SQLSTATE")
    for kind, relations in (("TYPE", catalog.types), ("VIEW", catalog.views)):
        for r in relations:
            if not r.comment:
                problems.append(f"{r.name}: no COMMENT ON {kind}")
            problems += [f"{r.name}.{col.name}: no COMMENT ON COLUMN" for col in r.columns if not col.comment]
    return problems


def test_every_public_object_is_documented(conn):
    problems = documentation_problems(conn)
    assert problems == [], ("the reference needs these in sql/functions or sql/views "
                            "(pgcredit/tools/reference.py describes the comment's form):\n  " + "\n  ".join(problems))


def recomment(conn, signature: str, edit) -> None:
    """Replaces a function's comment with edit(its comment), as its owner."""
    old = conn.execute(f"SELECT obj_description('credit.{signature}'::regprocedure) AS c").fetchone()["c"]
    conn.execute("SET ROLE credit_owner")
    conn.execute(f"COMMENT ON FUNCTION credit.{signature} IS $x${edit(old)}$x$")
    conn.execute("RESET ROLE")


def test_documentation_check_finds_what_is_missing(conn):
    """The check above fails where it should: a function without its comment,
    an argument left out, a view column without text."""
    recomment(conn, "get_available(text, text)", lambda c: "")
    recomment(conn, "block_line(text, text, text)", lambda c: c.replace("  reason: why", "  why: why"))
    conn.execute("SET ROLE credit_owner")
    conn.execute("COMMENT ON COLUMN credit.monitor_book.past_due IS NULL")
    conn.execute("RESET ROLE")
    problems = "\n".join(documentation_problems(conn))
    assert "credit.get_available(wholesaler_id text, retailer_id text): no COMMENT ON FUNCTION" in problems
    assert "credit.block_line(wholesaler_id text, retailer_id text, reason text): Arguments describes" in problems
    assert "credit.monitor_book.past_due: no COMMENT ON COLUMN" in problems


# -- Codes and SQLSTATEs against the source -----------------------------------------

_CALL = re.compile(r"\bcredit\.(\w+)\s*\(")
_LITERAL = re.compile(r"'((?:[^']|'')*)'")
_ERRCODE = re.compile(r"ERRCODE\s*=\s*'([0-9A-Z]{5})'")
# A code assembled at run time ('reservation_' || status) cannot be read from the source.
_ASSEMBLED = re.compile(r"'[a-z]+(?:_[a-z]+)*_'\s*\|\|")


# An event's kind names what happened (line_blocked, ...), not a result code.
_EVENT = re.compile(r"credit\._event\((?:[^;']|'(?:[^']|'')*')*;")


def _sources(conn) -> dict[str, str]:
    """Every function of schema credit, internal ones too: name -> source
    (overloads joined), without -- comments and without the arguments of
    the events it writes (the call to credit._event stays, as a call)."""
    out: dict[str, str] = {}
    with conn.cursor(row_factory=tuple_row) as cur:
        for name, src in cur.execute("SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'credit'::regnamespace"):
            src = _EVENT.sub("credit._event();", re.sub(r"--[^\n]*", "", src))
            out[name] = out.get(name, "") + "\n" + src
    return out


def _reachable(name: str, sources: dict[str, str]) -> list[str]:
    """The source of name and of every credit function it calls, directly or not."""
    seen, todo = set(), [name]
    while todo:
        n = todo.pop()
        if n in seen or n not in sources:
            continue
        seen.add(n)
        todo += _CALL.findall(sources[n])
    return [sources[n] for n in sorted(seen)]


def code_problems(conn) -> list[str]:
    """Codes a comment lists that the source cannot return, or the reverse;
    SQLSTATEs the source raises (or its lock-wait bound implies) that the
    comment leaves out."""
    catalog = read_catalog(conn)
    sources = _sources(conn)
    listed = {f: parse_comment(f.comment) for f in catalog.functions}
    vocabulary = {"ok"} | set(_BY_CODE) | {code for c in listed.values() for code in c.codes or []}
    problems = []
    for f, c in listed.items():
        where = f"credit.{f.name}"
        reachable = _reachable(f.name, sources)
        assembled = [m for src in reachable for m in _ASSEMBLED.findall(src)]
        if assembled:
            problems.append(f"{where}: builds a code at run time ({assembled[0]}...): write each code as a "
                            "literal, so that the reference can be checked against the source")
        if c.codes is not None:
            found = {lit for src in reachable for lit in _LITERAL.findall(src)} & vocabulary
            if set(c.codes) != found:
                problems.append(f"{where}: its comment lists codes {sorted(c.codes)}, its source can return "
                                f"{sorted(found)}")
        raised = {state for src in reachable for state in _ERRCODE.findall(src)}
        if any(s.startswith("lock_timeout=") for s in f.settings):
            raised.add("55P03")
        if raised - set(c.raises):
            problems.append(f"{where}: raises {sorted(raised - set(c.raises))}, which its comment's Raises leaves out")
    return problems


def test_codes_and_sqlstates_match_the_source(conn):
    problems = code_problems(conn)
    assert problems == [], "\n  ".join(["a comment in sql/functions disagrees with its function:", *problems])


def test_code_check_finds_a_code_left_out(conn):
    """Against a comment that drifted: reserve_credit without overdue, and
    get_available claiming a code and forgetting 22023."""
    recomment(conn, "reserve_credit(text, text, text, numeric, interval)", lambda c: c.replace(" overdue,", ""))
    recomment(conn, "get_available(text, text)", lambda c: re.sub(r"  22023:[^\n]*", "", c.replace(
        "Codes: ok, line_not_found", "Codes: ok, line_not_found, line_blocked")))
    problems = "\n".join(code_problems(conn))
    assert "credit.reserve_credit: its comment lists codes" in problems and "'overdue'" in problems
    assert ("credit.get_available: its comment lists codes ['line_blocked', 'line_not_found', 'ok'], "
            "its source can return ['line_not_found', 'ok']") in problems
    assert "credit.get_available: raises ['22023']" in problems


def test_every_code_has_a_meaning_and_an_exception():
    """A code in the reference has a typed exception in the Python client
    (pgcredit.errors), whose docstring gives its meaning."""
    meanings = code_meanings()
    assert set(meanings) == {"ok"} | set(_BY_CODE)
    assert all(meanings.values())


def test_listed_codes_have_an_exception(conn):
    listed = {code for f in read_catalog(conn).functions for code in parse_comment(f.comment).codes or []}
    assert listed - {"ok"} - set(_BY_CODE) == set(), \
        "add an exception for these codes to client/pgcredit/errors.py (_BY_CODE)"
