SET ROLE credit_owner;

-- The replay rule, for every call that writes under an idempotency key
-- (reserve_credit, convert_to_debit, the ledger calls and their bulk forms):
-- a call whose key was used before writes nothing and answers with what the
-- key holds: 'ok' (replayed) when its amount is the amount the key was used
-- with, else 'exists_with_different_amount'. NULL when the key holds nothing
-- yet (earlier_amount NULL): the call goes ahead. replayed is code = 'ok'.
-- Plain SQL: inlined into the caller.
CREATE OR REPLACE FUNCTION credit._replay(earlier_amount numeric, amount numeric) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN earlier_amount = amount THEN 'ok'
                WHEN earlier_amount IS NOT NULL THEN 'exists_with_different_amount' END
$$;
REVOKE ALL ON FUNCTION credit._replay(numeric, numeric) FROM PUBLIC;
