SET ROLE credit_owner;

-- The feed (SPEC "Events"): events with event_id > after_event_id, ascending,
-- at most max_rows; only wholesaler_id's when it is given. A reader that
-- passes the largest event_id it has received gets every committed event
-- once, in event_id order, however the writers' transactions interleave:
-- event_ids are drawn when events are written, in one order, and commit in
-- another, so this reads only up to the feed's horizon, below which every
-- event_id is final (migration 0010, credit._event_horizon), and advances
-- the horizon first.
--
-- - It must run at READ COMMITTED: advancing the horizon needs a snapshot
--   taken after the horizon's lock. In a read-only transaction it cannot
--   store the horizon; on a standby it reads up to the horizon the primary
--   stored and the run of committed events above it that the standby sees.
-- - It holds the horizon's lock, when it got it, until the caller's
--   transaction ends, and it takes its sample only in a transaction that had
--   no xid before: call it in a transaction of its own (the client does).
-- - A cursor below the largest event_id pruned raises 55000 events_pruned: the
--   events after it are gone. A cursor beyond the last event_id this feed has
--   issued raises 22023: it was not read here (another database or partition,
--   or this database restored from a backup older than the cursor), and the
--   events that will get the ids up to it would be skipped.
-- The page is returned as it is read (RETURN QUERY), and the checks come
-- after it (an error discards the page): the last event_id issued is read
-- before the page (it only grows, so an earlier read catches more cursors
-- from elsewhere), pruned_through after it. pruned_through only grows, and a
-- prune commits it with its DELETE: if a snapshot taken after the page's
-- sees the cursor at or above it, the page's saw nothing removed above the
-- cursor. (Reading the page into an array first, to check and read in one
-- statement, cost a reader 12% more per event: BENCHMARKS.md, "Events".)
--
-- What the feed's row leaves out is added here: data.available, from the
-- writer's available (rows written before migration 0010 have it in data
-- already, and available NULL), and the data of a hold_amended written
-- without it (amend_reservation's fast path), from its amendment, which
-- never changes: the order, the previous amount, and the new amount as what
-- remains.
CREATE OR REPLACE FUNCTION credit.events_after(
    after_event_id bigint DEFAULT 0, max_rows integer DEFAULT 100, wholesaler_id text DEFAULT NULL)
RETURNS SETOF credit.event_row
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_problem text;
    v_pruned bigint;
    v_last bigint;
    v_horizon bigint;
BEGIN
    v_problem := CASE
        WHEN after_event_id IS NULL OR after_event_id < 0 THEN
            format('after_event_id must be 0 or a positive event_id, got %s', coalesce(after_event_id::text, 'NULL'))
        WHEN max_rows IS NULL OR max_rows NOT BETWEEN 1 AND 1000 THEN
            format('max_rows must be between 1 and 1000, got %s', coalesce(max_rows::text, 'NULL'))
        WHEN events_after.wholesaler_id IS NOT NULL THEN credit._id_problem(events_after.wholesaler_id, 'wholesaler_id')
    END;
    IF v_problem IS NOT NULL THEN
        RAISE USING ERRCODE = '22023', MESSAGE = v_problem;
    END IF;

    IF NOT pg_is_in_recovery() THEN
        IF current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE USING ERRCODE = '25000', MESSAGE = format(
                'events_after must run at READ COMMITTED, not in a %s transaction: it advances the feed''s '
                'horizon, which needs a snapshot of its own; call it in a transaction of its own',
                current_setting('transaction_isolation'));
        ELSIF current_setting('transaction_read_only') = 'on' THEN
            RAISE USING ERRCODE = '25006', MESSAGE =
                'events_after cannot run in a read-only transaction on the primary: it advances the feed''s '
                'horizon; call it in a read-write transaction of its own';
        END IF;
    END IF;
    v_horizon := credit._event_horizon(NOT pg_is_in_recovery());
    SELECT CASE WHEN q.is_called THEN q.last_value ELSE q.last_value - 1 END INTO v_last FROM credit.event_id_seq q;

    -- Two statements, not one with `wholesaler_id IS NULL OR ...`, so that each has a plan of its own:
    -- a wholesaler's page by the primary key, filtering (what it reads is every event from the cursor up
    -- to the page's last, or up to the horizon), or by an index on (wholesaler_id, event_id) if the
    -- deployment has one (OPERATIONS.md, "Events": migration 0010 dropped it from the write path).
    IF events_after.wholesaler_id IS NULL THEN
        RETURN QUERY SELECT e.event_id, e.kind, e.wholesaler_id, e.retailer_id, e.ref, e.amount,
                            CASE WHEN e.available IS NULL THEN e.data
                                 ELSE coalesce(e.data,
                                               CASE WHEN e.kind = 'hold_amended' THEN
                                                   (SELECT jsonb_build_object('order_ref', a.order_ref,
                                                                              'previous_amount', a.previous_amount::text,
                                                                              'remaining_amount', a.new_amount::text,
                                                                              'hold_status', 'active')
                                                      FROM credit.line l
                                                      JOIN credit.amendment a ON a.line_id = l.id AND a.amend_ref = e.ref
                                                     WHERE l.wholesaler_id = e.wholesaler_id
                                                       AND l.retailer_id = e.retailer_id) END,
                                               '{}') || jsonb_build_object('available', round(e.available, 2)::text)
                            END,
                            e.created_at
                      FROM credit.event e
                     WHERE e.event_id > after_event_id AND e.event_id <= v_horizon
                     ORDER BY e.event_id LIMIT max_rows;
    ELSE
        RETURN QUERY SELECT e.event_id, e.kind, e.wholesaler_id, e.retailer_id, e.ref, e.amount,
                            CASE WHEN e.available IS NULL THEN e.data
                                 ELSE coalesce(e.data,
                                               CASE WHEN e.kind = 'hold_amended' THEN
                                                   (SELECT jsonb_build_object('order_ref', a.order_ref,
                                                                              'previous_amount', a.previous_amount::text,
                                                                              'remaining_amount', a.new_amount::text,
                                                                              'hold_status', 'active')
                                                      FROM credit.line l
                                                      JOIN credit.amendment a ON a.line_id = l.id AND a.amend_ref = e.ref
                                                     WHERE l.wholesaler_id = e.wholesaler_id
                                                       AND l.retailer_id = e.retailer_id) END,
                                               '{}') || jsonb_build_object('available', round(e.available, 2)::text)
                            END,
                            e.created_at
                      FROM credit.event e
                     -- The horizon as a filter (event_id - horizon <= 0), not as the range's other end: a
                     -- plan kept for any arguments would guess that range small and read the primary key
                     -- even where an index by wholesaler exists.
                     WHERE e.event_id > after_event_id AND e.event_id - v_horizon <= 0
                       AND e.wholesaler_id = events_after.wholesaler_id
                     ORDER BY e.event_id LIMIT max_rows;
    END IF;

    SELECT s.pruned_through INTO v_pruned FROM credit.event_state s;
    IF after_event_id < v_pruned THEN
        RAISE USING ERRCODE = '55000',
            MESSAGE = format('events_pruned: the events after event_id %s up to %s were pruned (prune_events); '
                             'this reader has missed them', after_event_id, v_pruned),
            DETAIL = format('pruned_through=%s', v_pruned),
            HINT = format('Rebuild what this reader keeps from the API''s reads, then resume with after_event_id => %s.',
                          v_pruned);
    ELSIF after_event_id > greatest(v_last, v_pruned) THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = format('after_event_id %s is beyond the last event_id of this feed (%s): it was not read here '
                             '(another database or partition, or this database was restored from a backup older '
                             'than the cursor)', after_event_id, greatest(v_last, v_pruned));
    END IF;
END
$$;
REVOKE ALL ON FUNCTION credit.events_after(bigint, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.events_after(bigint, integer, text) TO credit_app, credit_auditor;
COMMENT ON FUNCTION credit.events_after(bigint, integer, text) IS $doc$The event feed: every committed change to a line or a hold, in event_id order, after after_event_id; a
page of at most max_rows. A reader that passes the largest event_id it has received gets every committed
event exactly once, in order, however the writers' transactions interleave and commit: an event gets its
event_id when it is written, and this reads only up to the feed's horizon, below which every event_id is
final (committed, or rolled back and never to appear), so no event can appear below one already read.
This call advances the horizon, then reads; an event is readable once it has committed, every event with
a smaller event_id has committed or rolled back, and such a call follows (any reader's, or the prune job's). Refusals are not events
(the refusal log keeps them). Call it at READ COMMITTED in a transaction of its own (it holds the
horizon's lock until that transaction ends, when it got it); on a standby it reads up to the horizon the
primary stored, and the committed events right after it.
Arguments:
  after_event_id: the largest event_id this reader has received; 0: from the oldest event kept.
  max_rows: the page size, 1 to 1,000.
  wholesaler_id: only the events of this wholesaler's lines; NULL: every line's.
Raises:
  22023: an argument is invalid; the message names it, and nothing is written. Also a cursor beyond the
    last event_id the feed has issued: it was not read from this feed (another database or partition, or a database
    restored from a backup older than the cursor).
  25000: the transaction is not READ COMMITTED (advancing the horizon needs a snapshot of its own).
  25006: a read-only transaction on the primary, where it cannot store the horizon.
  55000: the events after after_event_id were pruned before this reader read them; the message starts
    with events_pruned, and its detail is pruned_through=N, the largest event_id removed.$doc$;
COMMENT ON TYPE credit.event_row IS $doc$One event of the feed (events_after).$doc$;
COMMENT ON COLUMN credit.event_row.event_id IS $doc$The event's position in the feed: ascending, given when the event is written, never reused; read in this order.$doc$;
COMMENT ON COLUMN credit.event_row.kind IS $doc$What happened: line_opened, limit_changed, temporary_limit_ended, line_blocked, line_unblocked,
overdue_policy_set, overdue_began, overdue_ended, hold_reserved, hold_released, hold_expired, debit_booked,
payment_recorded, debit_reversed or balance_adjusted.$doc$;
COMMENT ON COLUMN credit.event_row.wholesaler_id IS $doc$The line's wholesaler.$doc$;
COMMENT ON COLUMN credit.event_row.retailer_id IS $doc$The line's retailer.$doc$;
COMMENT ON COLUMN credit.event_row.ref IS $doc$The key of the change: the order_ref of a hold event and of debit_booked, the payment_ref,
reversal_ref or adjustment_ref of an entry; NULL for line events.$doc$;
COMMENT ON COLUMN credit.event_row.amount IS $doc$The money the event moved, 2 decimals: the hold's amount (hold_reserved, hold_released, hold_expired),
the entry's (debit_booked, payment_recorded, debit_reversed, balance_adjusted: signed), the limit now in
force (line_opened, limit_changed, temporary_limit_ended), the tolerated overdue amount
(overdue_policy_set), the amount past due (overdue_began, overdue_ended); NULL for line_blocked and
line_unblocked.$doc$;
COMMENT ON COLUMN credit.event_row.data IS $doc$The kind's other figures, money as strings with 2 decimals: always available (the line's available
after the change); effective_at (when a time-driven change took effect: hold_expired,
temporary_limit_ended, overdue_began); reason; expires_at (hold_reserved); previous_limit and
valid_until (limit changes); currency and payment_terms_days (line_opened); grace_days and
max_overdue_amount (overdue events); ledger_entry_id, outstanding and settlements, a list of
{ledger_entry_id, entry_type, ref, amount} of the open items the entry settled (entries); due_date,
released_amount and final (debit_booked); order_ref (debit_reversed: the debit reversed). OPERATIONS.md
lists them by kind.$doc$;
COMMENT ON COLUMN credit.event_row.created_at IS $doc$When the change was made (its transaction's start).$doc$;
