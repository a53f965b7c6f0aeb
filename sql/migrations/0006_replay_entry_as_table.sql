-- Helpers whose return type or arguments change, which CREATE OR REPLACE
-- cannot do to an existing function: the function files, loaded after this,
-- create them anew.
-- - credit._replay_entry becomes a set-returning function, read as a table
--   so that PostgreSQL inlines it (sql/functions/_replay_entry.sql).
-- - credit._allocate_item and credit._allocate_credit take posting's moves of
--   the line's totals, so that posting an entry updates its line once
--   (sql/functions/_post_entries.sql).

SET ROLE credit_owner;

DROP FUNCTION IF EXISTS credit._replay_entry(credit.line, text, text, numeric);
DROP FUNCTION IF EXISTS credit._allocate_item(bigint, bigint, date, numeric, timestamptz);
DROP FUNCTION IF EXISTS credit._allocate_credit(bigint, numeric, bigint, timestamptz);

RESET ROLE;
