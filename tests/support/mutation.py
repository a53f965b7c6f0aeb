"""Deliberately broken variants of the SQL, for self-checks: a test that must
fail against a broken rule proves it can fail. One helper, so that every
variant is made the same way: from the file as shipped, each edit found
exactly once (a stale edit fails loudly instead of testing nothing), loaded
into the test's own database only."""

from __future__ import annotations

import psycopg

from pgcredit.migrate import OBJECT_FOLDERS, sql_dir


def variant(name: str, *edits: tuple[str, str]) -> str:
    """The text of sql/functions/<name> (or views/) with each (old, new) edit made."""
    root = sql_dir()
    (path,) = [root / folder / name for folder in OBJECT_FOLDERS if (root / folder / name).exists()]
    text = path.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, f"{name}: the edit's text is not found exactly once: {old!r}"
        text = text.replace(old, new)
    return text


def install_variant(conn: psycopg.Connection, name: str, *edits: tuple[str, str]) -> None:
    """Replaces the function (or view) of file `name` in conn's database with the edited text."""
    conn.execute(variant(name, *edits))
    conn.execute("RESET ROLE")
