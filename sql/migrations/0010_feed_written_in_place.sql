-- Events are written where they are read: straight into the feed,
-- credit.event, with their event_id drawn at write time; the inbox and the
-- mover that copied each event from it into the feed (migration 0008) go.
-- The copy cost reserve_credit more than writing the event itself
-- (BENCHMARKS.md, "Events").
--
-- Event_ids are now taken in one order and committed in another, so a reader
-- that took `event_id > cursor` could pass an event whose transaction is
-- still open and skip it for ever. events_after therefore reads only up to a
-- horizon: an event_id such that every event_id at or below it is final
-- (committed, or rolled back and never to appear). The rule every writer
-- keeps makes that decidable: an event is written after the change it
-- records, so its transaction has its xid before it draws the event_id
-- (credit._event). The horizon advances by three arguments
-- (credit._event_horizon), each enough on its own:
--
-- 1. A run. If every event_id from horizon + 1 up to k is visible to a
--    snapshot, each of them is committed, and no other event can ever take
--    one of those ids (a sequence never repeats): k is a horizon. This
--    needs no lock and no xid, holds at any isolation level and on a
--    standby, and is what moves the horizon while nothing rolls back.
-- 2. A sample, for the gaps a run cannot cross (an event rolled back, a
--    failed insert, the ids a sequence skips after a crash). The caller
--    reads C, the sequence's last value, in one statement, and only then
--    takes an xid X, in a later one, in a transaction that had none before
--    it read C. A transaction that drew an event_id <= C drew it before C
--    was read, and had its xid before that: its xid is below X (xids are
--    handed out in ascending order). A snapshot whose xmin is >= X was
--    taken when no xid below X was running, so every such transaction had
--    ended by then: committed (and visible to it) or rolled back. C is a
--    horizon from then on. xmin counts the caller's own xid too, and X
--    itself is the caller's, so the same call may find its sample usable at
--    once (nothing older running); otherwise (C, X) is stored in
--    credit.event_state and the first call whose snapshot passes X uses it.
--    Not a snapshot's xmax for X: xmax is one past the newest xid that has
--    completed, and a transaction with a larger xid may be open and already
--    hold an event_id <= C.
-- 3. A probe, for a gap while a transaction that writes no events holds
--    xmin back (a long one in any database of the cluster): every writer
--    holds ROW EXCLUSIVE on credit.event from before it draws its event_id
--    (the INSERT takes it) until it ends, or until the subtransaction that
--    wrote the event rolls back with it. So if, after C was read, a lock
--    that conflicts with ROW EXCLUSIVE can be had at once (SHARE, NOWAIT,
--    in a subtransaction rolled back at once), every transaction that drew
--    an event_id <= C has ended, and C is a horizon. While writers are
--    always in flight the probe fails, and the samples advance the horizon.
--
-- tests/contract/test_events.py's race catches each argument broken (a
-- sample used without waiting for xmin, a probe with a lock writers do not
-- conflict with, a run taken past its first gap).
--
-- The horizon only grows; it is stored in credit.event_state by whichever
-- call holds the horizon's lock (a transaction-level advisory lock keyed by
-- credit.event's oid; readers only try it, so they never queue behind one
-- another: a reader without it reads up to the stored horizon and its own
-- run). No event is skipped: a reader never reads above a horizon, and below
-- one nothing new can appear. None is duplicated: a reader passes the
-- largest event_id it received and gets only larger ones. On a standby the
-- stored horizon arrives with the primary's WAL after every commit it
-- depends on (the commits that made it final precede the update that stored
-- it), and runs are judged by the standby's own snapshot.
--
-- What the mover used to add is added when an event is read: data.available
-- from the row's available column, and the data of a hold_amended written
-- without it (amend_reservation's fast path) from its amendment. Rows the
-- mover wrote (before this migration) carry their data complete and
-- available NULL; rows written since always have available.

SET ROLE credit_owner;

-- The mover's lock: a mover in flight commits first, and none starts
-- (prune_events waits for the lock; events_after only tries it).
DO $lock$ BEGIN PERFORM pg_advisory_xact_lock('credit.event'::regclass::oid::integer, 0); END $lock$;
-- Writers in flight commit (or roll back) first, and none writes until this commits.
LOCK TABLE credit.event_inbox IN ACCESS EXCLUSIVE MODE;
-- The view reads the inbox and the mover's state; the reload creates it again.
DROP VIEW IF EXISTS credit.monitor_events;

ALTER TABLE credit.event
    ADD COLUMN available numeric,        -- the line's available after the change (data.available when read)
    ALTER COLUMN data DROP NOT NULL,     -- the kind's other figures, NULL when there are none
    ALTER COLUMN created_at SET DEFAULT now();

-- The inbox, moved one last time, after the events already in the feed and
-- in the order written.
INSERT INTO credit.event (event_id, kind, wholesaler_id, retailer_id, ref, amount, available, data, created_at)
SELECT (SELECT greatest((SELECT max(e.event_id) FROM credit.event e), s.pruned_through) FROM credit.event_state s)
         + row_number() OVER (ORDER BY i.seq),
       i.kind, i.wholesaler_id, i.retailer_id, i.ref, i.amount, i.available, i.data, i.created_at
  FROM credit.event_inbox i
 ORDER BY i.seq;

-- Not an identity: a partitioned deployment strides its identities (ids
-- unique across partitions); a partition's feed numbers its own events.
CREATE SEQUENCE credit.event_id_seq OWNED BY credit.event.event_id;
DO $setval$ BEGIN
    PERFORM setval('credit.event_id_seq', greatest(t.last, 1), t.last > 0)
       FROM (SELECT greatest((SELECT max(e.event_id) FROM credit.event e), s.pruned_through) AS last
               FROM credit.event_state s) t;
END $setval$;
ALTER TABLE credit.event ALTER COLUMN event_id SET DEFAULT nextval('credit.event_id_seq');

-- horizon: every event_id <= horizon is final. sample_id and sample_xid: the
-- sequence's last value, and an xid taken after it was read (above).
ALTER TABLE credit.event_state DROP COLUMN low_seq;
ALTER TABLE credit.event_state RENAME COLUMN sample_seq TO sample_id;
ALTER TABLE credit.event_state ADD COLUMN horizon bigint NOT NULL DEFAULT 0;
UPDATE credit.event_state s
   SET horizon = greatest((SELECT max(e.event_id) FROM credit.event e), s.pruned_through),
       sample_id = 0, sample_xid = '0';

-- Every event is now written into this table under its line's lock, and
-- each index of the table is written with it: the wholesaler's index cost
-- reserve_credit 13k instructions of 447k per call (BENCHMARKS.md,
-- "Events"). events_after(wholesaler_id => ...) reads the feed by its
-- primary key instead, filtering; a deployment whose consumers each follow
-- one wholesaler creates it again (OPERATIONS.md, "Events"), and the reads
-- use it.
DROP INDEX credit.event_wholesaler_idx;

DROP TABLE credit.event_inbox;
DROP SEQUENCE credit.event_inbox_seq;
DROP FUNCTION IF EXISTS credit._move_events(integer);

RESET ROLE;
