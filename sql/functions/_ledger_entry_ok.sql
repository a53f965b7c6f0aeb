SET ROLE credit_owner;

-- The ledger's row rule, checked on every entry (the CHECK constraint
-- ledger_entry_ok, migration 0009): a known entry type; an amount that is a
-- finite number, greater than zero except for an ADJUSTMENT, which is signed
-- and never zero; a due date on every DEBIT, on no CREDIT or REVERSAL, and
-- optional on a positive ADJUSTMENT (v1 rows have none); a debit_id on every
-- REVERSAL and on nothing else.
--
-- One PL/pgSQL function rather than four CHECK expressions: PostgreSQL reads a
-- table's CHECK expressions from their stored text and plans them again in
-- every statement that writes the table, where a PL/pgSQL function's plan is
-- kept for the session (BENCHMARKS.md, "Orders as they happen: what they cost").
CREATE OR REPLACE FUNCTION credit._ledger_entry_ok(entry_type text, amount numeric, due_date date, debit_id bigint)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN entry_type IN ('DEBIT', 'CREDIT', 'REVERSAL', 'ADJUSTMENT')
       AND amount > '-Infinity' AND amount < 'Infinity' AND (amount > 0 OR (entry_type = 'ADJUSTMENT' AND amount <> 0))
       AND CASE WHEN entry_type = 'DEBIT' THEN due_date IS NOT NULL
                WHEN entry_type = 'ADJUSTMENT' AND amount > 0 THEN true
                ELSE due_date IS NULL END
       AND (entry_type = 'REVERSAL') = (debit_id IS NOT NULL);
END
$$;
REVOKE ALL ON FUNCTION credit._ledger_entry_ok(text, numeric, date, bigint) FROM PUBLIC;
