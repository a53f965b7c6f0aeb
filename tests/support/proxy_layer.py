"""The proxy layer's golden tests without PL/Proxy or a database: a partition's
catalog, captured once from a real migrated partition, is stored as data in
tests/unit/proxy_layer/catalog.json; the layer generated from it is compared
with the committed tests/unit/proxy_layer/layer_p*.sql.

After a change to the SQL API (a function, a view, a grant), one command
captures the catalog again and rewrites the goldens; review their diff:

    .venv/bin/python tests/support/proxy_layer.py

After a change to the generator that is meant to change its output, rewrite
the goldens from the committed catalog only:

    .venv/bin/python tests/support/proxy_layer.py --golden
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "unit" / "proxy_layer"
CATALOG = DATA / "catalog.json"
LOGIN_GRANTS = DATA / "login_grants.txt"
# The partition counts of the goldens: the suite's proxy, and one other.
COUNTS = (4, 1)


def golden_path(count: int) -> Path:
    return DATA / f"layer_p{count}.sql"


def _pairs(rows) -> tuple[tuple[str, str], ...]:
    return tuple((a, b) for a, b in rows)


def load(path: Path = CATALOG):
    """The Catalog stored at `path`."""
    from pgcredit.partitions import Catalog, Function, View

    data = json.loads(path.read_text(encoding="utf-8"))
    functions = tuple(Function(
        name=f["name"], args=f["args"], identity_args=f["identity_args"], arg_names=tuple(f["arg_names"]),
        arg_types=tuple(f["arg_types"]), result=f["result"], returns_set=f["returns_set"],
        columns=_pairs(f["columns"]), grantees=tuple(f["grantees"])) for f in data["functions"])
    views = tuple(View(v["name"], _pairs(v["columns"]), tuple(v["grantees"])) for v in data["views"])
    types = tuple((t["name"], _pairs(t["columns"])) for t in data["types"])
    return Catalog(functions, views, types, frozenset(data["private"]), tuple(data["schema_usage"]),
                   frozenset(data["keywords"]))


def dump(catalog, path: Path, captured_from: str) -> None:
    data = {
        "captured_from": captured_from,
        "functions": [dict(name=f.name, args=f.args, identity_args=f.identity_args, arg_names=list(f.arg_names),
                           arg_types=list(f.arg_types), result=f.result, returns_set=f.returns_set,
                           columns=[list(c) for c in f.columns], grantees=list(f.grantees))
                      for f in catalog.functions],
        "views": [dict(name=v.name, columns=[list(c) for c in v.columns], grantees=list(v.grantees))
                  for v in catalog.views],
        "types": [dict(name=n, columns=[list(c) for c in cols]) for n, cols in catalog.types],
        "private": sorted(catalog.private),
        "schema_usage": list(catalog.schema_usage),
        "keywords": sorted(catalog.keywords),
    }
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def capture():
    """The catalog of partition 0 of 4, set up as `migrate --partitions` sets
    one up, on a throwaway server of the newest PostgreSQL found; and where it
    came from."""
    import psycopg

    from pgcredit.partitions import read_catalog
    from pgcredit.partitions.deployment import set_up_partition
    from pgcredit.tools import embedded

    with embedded.throwaway() as server:
        dsn = server.ensure_database("partition")
        set_up_partition(dsn, 0, 4)
        with psycopg.connect(dsn, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            return read_catalog(conn), f"partition 0 of 4, PostgreSQL {version}, this tree's sql/"


def write_goldens() -> None:
    from pgcredit.partitions import generate_layer, login_grants

    catalog = load()
    for count in COUNTS:
        golden_path(count).write_text(generate_layer(catalog, count), encoding="utf-8")
    LOGIN_GRANTS.write_text("".join(g + "\n" for g in login_grants(catalog)), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--golden", action="store_true",
                        help="only rewrite the goldens from the committed catalog")
    args = parser.parse_args(argv)
    if not args.golden:
        catalog, where = capture()
        dump(catalog, CATALOG, where)
        print(f"captured {CATALOG} ({len(catalog.functions)} functions, {len(catalog.views)} views): {where}")
    write_goldens()
    print(f"rewrote {', '.join(str(golden_path(c)) for c in COUNTS)} and {LOGIN_GRANTS}: review `git diff`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
