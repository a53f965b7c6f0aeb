"""The proxy's routing layer as generated from a partition's catalog, without
PL/Proxy or a database: the catalog is data (proxy_layer/catalog.json,
captured from a real partition), the layer is compared with the committed
goldens byte for byte, and changes to the catalog change the layer where they
should and nowhere else. How to capture again or rewrite the goldens:
tests/support/proxy_layer.py."""

from __future__ import annotations

import dataclasses
import re

import pytest

from pgcredit.migrate import sql_dir
from pgcredit.partitions import Function, PartitionSetupError, View, generate_layer, login_grants
from pgcredit.partitions.deployment import STATIC_FILES, defined_functions
from support.proxy_layer import COUNTS, LOGIN_GRANTS, golden_path, load

AGAIN = "if the change is meant: .venv/bin/python tests/support/proxy_layer.py --golden, and review the diff"


@pytest.fixture(scope="module")
def catalog():
    return load()


def with_functions(catalog, *functions: Function):
    """The catalog with more functions, in the catalog's own order (by name)."""
    return dataclasses.replace(catalog, functions=tuple(sorted(catalog.functions + functions,
                                                               key=lambda f: (f.name, f.identity_args))))


@pytest.mark.parametrize("count", COUNTS)
def test_the_layer_is_the_golden(catalog, count):
    assert generate_layer(catalog, count) == golden_path(count).read_text(encoding="utf-8"), AGAIN


def test_the_goldens_differ_in_the_partition_count_only_where_it_is_used():
    four, one = (golden_path(c).read_text(encoding="utf-8").splitlines() for c in (4, 1))
    assert len(four) == len(one)
    changed = [(a, b) for a, b in zip(four, one) if a != b]
    assert changed
    for a, b in changed:
        # The partition of a line (hash & N - 1), the count given to the error
        # translation, the loops over partitions, "every partition has a row";
        # the partitions a per-partition call may name (0..N-1).
        assert a.replace("& 3", "& 0").replace(", 4);", ", 1);").replace("< 4 LOOP", "< 1 LOOP") \
                .replace("count(*) = 4", "count(*) = 1").replace("AND 3 THEN", "AND 0 THEN") \
                .replace("and 3 (", "and 0 (").replace("(0, 3)", "(0, 0)") == b, (a, b)


def test_login_grants_are_the_golden(catalog):
    assert login_grants(catalog) == LOGIN_GRANTS.read_text(encoding="utf-8").splitlines(), AGAIN


def test_the_fixture_is_a_partitions_catalog(catalog):
    """What the goldens are made of: the whole API of a partition, so that the
    goldens cover every routing kind."""
    names = {f.name for f in catalog.functions}
    assert {"reserve_credit", "reserve_credit_batch", "list_lines", "aging", "reconcile", "expire_reservations",
            "record_reconcile"} <= names
    assert {v.name for v in catalog.views} >= {"line_summary", "monitor_totals", "monitor_reconcile"}
    assert "_misplaced_lines()" in catalog.private  # set up as a partition, not a single server
    assert "select" in catalog.keywords


NOTE = Function(
    name="note_line", args="wholesaler_id text, retailer_id text, note text DEFAULT NULL::text",
    identity_args="wholesaler_id text, retailer_id text, note text", arg_names=("wholesaler_id", "retailer_id", "note"),
    arg_types=("text", "text", "text"), result="credit.status_result", returns_set=False,
    columns=(("code", "text"), ("status", "text")), grantees=("credit_app",))

NOTE_LAYER = """RESET ROLE;
CREATE FUNCTION credit_route.note_line(wholesaler_id text, retailer_id text, note text) RETURNS credit.status_result
LANGUAGE plproxy AS $plproxy$
    CLUSTER 'credit_partitions';
    RUN ON credit._line_hash(wholesaler_id, retailer_id);
    TARGET credit.note_line;
$plproxy$;
ALTER FUNCTION credit_route.note_line(wholesaler_id text, retailer_id text, note text) OWNER TO credit_owner;
REVOKE ALL ON FUNCTION credit_route.note_line(wholesaler_id text, retailer_id text, note text) FROM PUBLIC;
SET ROLE credit_owner;

-- Runs on the partition of the line (wholesaler_id, retailer_id).
CREATE FUNCTION credit.note_line(wholesaler_id text, retailer_id text, note text DEFAULT NULL::text) RETURNS credit.status_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    px_state text;
    px_message text;
    px_detail text;
    px_hint text;
BEGIN
    RETURN credit_route.note_line(wholesaler_id, retailer_id, note);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS px_state = RETURNED_SQLSTATE, px_message = MESSAGE_TEXT,
                            px_detail = PG_EXCEPTION_DETAIL, px_hint = PG_EXCEPTION_HINT;
    PERFORM credit._partition_error(px_state, px_message, px_detail, px_hint, credit._line_hash(wholesaler_id, retailer_id) & 7, 8);
    RAISE;
END
$body$;
REVOKE ALL ON FUNCTION credit.note_line(wholesaler_id text, retailer_id text, note text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.note_line(wholesaler_id text, retailer_id text, note text) TO credit_app;

"""


def test_a_new_function_of_a_line_adds_its_route_and_wrapper_and_nothing_else(catalog):
    before, after = generate_layer(catalog, 8), generate_layer(with_functions(catalog, NOTE), 8)
    assert NOTE_LAYER in after
    assert after.replace(NOTE_LAYER, "", 1) == before
    assert login_grants(with_functions(catalog, NOTE)) == login_grants(catalog)


def test_a_new_function_granted_to_no_role_is_for_the_proxys_login_only(catalog):
    private = dataclasses.replace(NOTE, grantees=())
    after = generate_layer(with_functions(catalog, private), 8)
    assert NOTE_LAYER.replace(
        "\nGRANT EXECUTE ON FUNCTION credit.note_line(wholesaler_id text, retailer_id text, note text) TO credit_app;",
        "") in after
    grants = login_grants(with_functions(catalog, private))
    assert [g for g in grants if g not in login_grants(catalog)] == [
        "credit.note_line(wholesaler_id text, retailer_id text, note text)"]
    assert len(grants) == len(login_grants(catalog)) + 1


def test_a_changed_grant_changes_its_grant_line_only(catalog):
    functions = tuple(dataclasses.replace(f, grantees=(*f.grantees, "credit_monitor"))
                      if f.name == "get_available" else f for f in catalog.functions)
    before = generate_layer(catalog, 4).splitlines()
    after = generate_layer(dataclasses.replace(catalog, functions=functions), 4).splitlines()
    added = [line for line in after if line not in before]
    assert added == ["GRANT EXECUTE ON FUNCTION credit.get_available(wholesaler_id text, retailer_id text) "
                     "TO credit_monitor;"]
    assert [line for line in after if line != added[0]] == before


def test_a_batch_without_its_check_function_is_refused_through_the_proxy(catalog):
    batch = next(f for f in catalog.functions if f.name == "record_payment_batch")
    check = f"_record_payment_batch_check({batch.identity_args})"
    without = dataclasses.replace(catalog, private=catalog.private - {check})
    layer = generate_layer(without, 4)
    assert ("RAISE USING ERRCODE = '0A000', MESSAGE = 'credit.record_payment_batch is not available through the "
            f"proxy: its partitions have no credit.{check} to validate a whole batch") in layer
    assert "credit_route.record_payment_batch(" not in layer
    assert f"credit.{check}" not in login_grants(without)


def test_a_name_that_is_a_keyword_is_quoted(catalog):
    views = tuple(dataclasses.replace(v, columns=(*v.columns, ("order", "text"))) if v.name == "monitor_lines"
                  else v for v in catalog.views)
    layer = generate_layer(dataclasses.replace(catalog, views=views), 4)
    assert ', px_row."order" FROM credit.monitor_lines px_row;' in layer
    assert ', "order" text)' in layer


def test_what_has_no_routing_rule_is_refused_naming_where_to_add_it(catalog):
    odd = dataclasses.replace(NOTE, name="note_order", args="order_ref text", identity_args="order_ref text",
                              arg_names=("order_ref",), arg_types=("text",))
    with pytest.raises(PartitionSetupError, match=r"credit\.note_order\(order_ref text\) has no routing rule.*ROUTES"):
        generate_layer(with_functions(catalog, odd), 4)
    view = View("monitor_notes", (("notes", "bigint"),), ("credit_monitor",))
    with pytest.raises(PartitionSetupError, match=r"view credit\.monitor_notes has no rule.*VIEWS"):
        generate_layer(dataclasses.replace(catalog, views=(*catalog.views, view)), 4)


def test_the_functions_a_rebuild_keeps_are_those_the_static_sql_defines():
    """A rebuild drops every function of credit and credit_route but those of
    sql/proxy/proxy.sql and line_hash.sql, named by reading those files."""
    static = "".join((sql_dir() / "proxy" / name).read_text(encoding="utf-8") for name in STATIC_FILES)
    kept = defined_functions(static)
    assert {"credit._partition_error", "credit._line_hash", "credit._jsonb_counts_sum"} <= kept
    assert len(kept) == len(re.findall(r"^CREATE OR REPLACE (?:FUNCTION|AGGREGATE) ", static, re.MULTILINE))
    generated = set(re.findall(r"^CREATE FUNCTION (credit\w*\.\w+)\(", golden_path(4).read_text(), re.MULTILINE))
    assert len(generated) > 50 and not generated & kept
