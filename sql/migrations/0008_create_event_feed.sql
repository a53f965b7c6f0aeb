-- Events (SPEC v1.2): every change to a line or a hold is also an event,
-- written in the same transaction as the change, and read by applications
-- in event_id order with events_after (OPERATIONS.md, "Events").
--
-- Two tables, because a reader must never skip an event that commits late:
--
-- - credit.event_inbox: where the functions write, one narrow row per event
--   (credit._event). seq orders the events of one transaction and, since
--   every event of a line is written under the line's row lock, the events
--   of one line across transactions too. It is not a position in the feed:
--   transactions take seqs in one order and commit in another.
-- - credit.event: the feed. A mover (credit._move_events, run by
--   events_after and prune_events) takes the committed inbox rows (a DELETE
--   sees only committed rows) and appends them here with the next event_ids,
--   in seq order, under a lock that only movers take and that each holds
--   until it commits. Every event_id below one a reader can see is therefore
--   committed already: `event_id > cursor` never skips anything. Readers
--   only ever see this table; the publication pgcredit_events publishes it,
--   so that a logical replication subscriber gets each event once, with its
--   final event_id.
--
-- credit.event_state (one row) keeps the largest event_id pruned (a reader
-- behind it gets events_pruned instead of a silent gap), and where in the
-- inbox the movers need to look (low_seq and its sample: _move_events).

SET ROLE credit_owner;

-- A sequence of its own, not an identity: movers read its last value, and a
-- partitioned deployment strides its identities (ids unique across
-- partitions), which would renumber this one below the rows waiting here.
CREATE SEQUENCE credit.event_inbox_seq;
CREATE TABLE credit.event_inbox (
    seq           bigint NOT NULL DEFAULT nextval('credit.event_inbox_seq'),
    wholesaler_id text NOT NULL,
    retailer_id   text NOT NULL,
    kind          text NOT NULL,
    ref           text,
    amount        numeric,
    available     numeric,        -- the line's available after the change: data.available in the feed
    data          jsonb,          -- the kind's other figures (SPEC), NULL when there are none
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Movers read the inbox from a low-water mark on (_move_events): with this
-- index a move costs what it moves, not what earlier moves left behind for
-- VACUUM to remove.
CREATE INDEX event_inbox_seq_idx ON credit.event_inbox (seq);

-- Money reads with scale 2 here as in every result; figures inside data are
-- strings with 2 decimals (exact in any language's JSON parser).
CREATE TABLE credit.event (
    event_id      bigint PRIMARY KEY,
    kind          text NOT NULL,
    wholesaler_id text NOT NULL,
    retailer_id   text NOT NULL,
    ref           text,
    amount        numeric(1000, 2),
    data          jsonb NOT NULL,
    created_at    timestamptz NOT NULL
);
-- An event never changes once in the feed (prune_events removes old ones).
CREATE TRIGGER event_no_update BEFORE UPDATE ON credit.event
    FOR EACH ROW EXECUTE FUNCTION credit._refuse_change();
ALTER TABLE credit.event ENABLE ALWAYS TRIGGER event_no_update;
-- events_after(wholesaler_id => ...): a page costs what it returns, however
-- many events other wholesalers have.
CREATE INDEX event_wholesaler_idx ON credit.event (wholesaler_id, event_id);

CREATE TABLE credit.event_state (
    one_row        boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    pruned_through bigint NOT NULL DEFAULT 0,
    low_seq        bigint NOT NULL DEFAULT 0,   -- every inbox row with seq <= low_seq has been moved (or rolled back)
    sample_xid     xid8 NOT NULL DEFAULT '0',   -- a mover's xid, and the inbox sequence's last value read before
    sample_seq     bigint NOT NULL DEFAULT 0    -- it was assigned: the next low_seq, once every xid below it has ended
);
INSERT INTO credit.event_state DEFAULT VALUES;

-- overdue_began / overdue_ended: since when the line has been refusing with
-- 'overdue', as the last event about it said (NULL: not refusing).
ALTER TABLE credit.line ADD COLUMN overdue_since timestamptz;

CREATE TYPE credit.event_row AS (
    event_id bigint, kind text, wholesaler_id text, retailer_id text, ref text, amount numeric(1000, 2),
    data jsonb, created_at timestamptz);

-- A database upgraded from an earlier release gets one line_opened event per
-- line, carrying the line's figures as they are now, so that a consumer who
-- replays the feed from zero builds every line as it stands.
INSERT INTO credit.event_inbox (wholesaler_id, retailer_id, kind, amount, available, data, created_at)
SELECT l.wholesaler_id, l.retailer_id, 'line_opened', l.credit_limit,
       CASE WHEN l.limit_valid_until > now() THEN l.temp_limit ELSE l.credit_limit END - l.reserved - l.outstanding,
       jsonb_strip_nulls(jsonb_build_object(
           'currency', l.currency, 'payment_terms_days', l.payment_terms_days, 'status', l.status,
           'reserved', round(l.reserved, 2)::text, 'outstanding', round(l.outstanding, 2)::text,
           'temporary_limit', CASE WHEN l.limit_valid_until > now() THEN round(l.temp_limit, 2)::text END,
           'valid_until', CASE WHEN l.limit_valid_until > now() THEN l.limit_valid_until END,
           'grace_days', l.overdue_grace_days, 'max_overdue_amount', round(l.max_overdue_amount, 2)::text,
           'upgraded', true)),
       l.created_at
  FROM credit.line l
 ORDER BY l.id;

RESET ROLE;

-- Logical replication of the feed (OPERATIONS.md, "Events"): inserts only, so
-- that prune_events removes old events here without removing them from a
-- subscriber. Created by the migrating user (it needs CREATE on the database,
-- which credit_owner does not have) as a member of credit_owner, which owns
-- the table.
CREATE PUBLICATION pgcredit_events FOR TABLE credit.event WITH (publish = 'insert');
