SET ROLE credit_owner;

-- How an entry moves its line's outstanding: a DEBIT and an ADJUSTMENT
-- (signed) add to it, a CREDIT and a REVERSAL take from it. Posting
-- (_post_entries) applies it; the results that report outstanding after an
-- entry read it back. Plain SQL: inlined into the caller.
CREATE OR REPLACE FUNCTION credit._entry_delta(entry_type text, amount numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN entry_type IN ('CREDIT', 'REVERSAL') THEN -amount ELSE amount END
$$;
REVOKE ALL ON FUNCTION credit._entry_delta(text, numeric) FROM PUBLIC;
