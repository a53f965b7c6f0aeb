"""How each function and view of the API is served through the proxy: the
file to edit when the API gains a function or a view that the default rules
do not cover.

The default rules need nothing written down:

- a function whose first two arguments are (wholesaler_id text, retailer_id
  text) runs on the partition of that line;
- a bulk call, whose first two arguments are (wholesaler_ids text[],
  retailer_ids text[]), is split by the partition of each item's line, after
  the partition function credit._<name>_check(same arguments) has validated
  the whole call.

Everything else is an exception, listed in ROUTES (functions) or VIEWS (every
view: how its rows from every partition become the proxy's view). A function
or view that has no rule stops `migrate --partitions` with a message naming
the dictionary to add it to.
"""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class OnPartition:
    """Run on one partition, named by an argument the proxy adds after the
    function's own (`partition integer`, 0..N-1, required; credit.partitions()
    lists them): for what each partition keeps apart, such as its event feed,
    whose event_ids are its own."""

    arg: str = "partition"


ROUTES: dict[str, OnAll | EachPartition | OnPartition] = {
    # reconcile() on the proxy also proves that every line is on the partition
    # the proxy routes it to.
    "reconcile": OnAll(also="credit._misplaced_lines()"),
    "expire_reservations": EachPartition("max_count"),
    # Each partition records its own run (its monitor_reconcile); returns the findings of all.
    "record_reconcile": EachPartition(),
    "list_lines": OnAll(order_by=("retailer_id",), limit_arg="max_rows"),
    "aging": OnAll(order_by=("wholesaler_id", "retailer_id"), line_args=("wholesaler_id", "retailer_id")),
    # Each partition has its own feed (SPEC "Events"): a reader per partition.
    "events_after": OnPartition(),
    "prune_events": EachPartition(),
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
    "monitor_events": ViewRule(aggregate=True, merge=(("oldest_waiting_seconds", "max"),)),
    # The partitions' last scheduled runs: the oldest one's times (how stale the
    # book's proof is), the findings of all.
    "monitor_reconcile": ViewRule(aggregate=True, every_partition=True, merge=(
        ("run_id", "max"), ("started_at", "min"), ("finished_at", "min"),
        ("findings_by_check", "credit._jsonb_counts_sum"), ("oldest_active_hold_at", "min"),
        ("oldest_active_hold_age", "max"))),
}

# Where these rules live, for the messages that ask to edit them.
RULES_FILE = "client/pgcredit/partitions/rules.py"


def by_line(arg_names: tuple[str, ...], arg_types: tuple[str, ...]) -> bool:
    """The default rule: a function of one line runs on that line's partition."""
    return arg_names[:2] == ("wholesaler_id", "retailer_id") and arg_types[:2] == ("text", "text")


def is_batch(arg_names: tuple[str, ...], arg_types: tuple[str, ...]) -> bool:
    """The bulk-call rule: one array per argument, split by each item's line."""
    return arg_names[:2] == ("wholesaler_ids", "retailer_ids") and arg_types[:2] == ("text[]", "text[]")
