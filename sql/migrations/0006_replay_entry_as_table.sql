-- credit._replay_entry becomes a set-returning function (read as a table, so
-- that PostgreSQL inlines it: sql/functions/_replay_entry.sql), which
-- CREATE OR REPLACE cannot do to an existing function: the function files,
-- loaded after this, create it anew.

SET ROLE credit_owner;

DROP FUNCTION IF EXISTS credit._replay_entry(credit.line, text, text, numeric);

RESET ROLE;
