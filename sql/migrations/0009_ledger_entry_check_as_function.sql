-- The ledger's four CHECK constraints become one, a call of
-- credit._ledger_entry_ok (sql/functions/_ledger_entry_ok.sql), which states
-- the same rule: PostgreSQL reads a table's CHECK expressions from their
-- stored text and plans them again in every statement that writes the table,
-- which cost each INSERT into credit.ledger_entry more than the row itself;
-- a PL/pgSQL function's plan is kept for the session.
--
-- NOT VALID, and not validated here: every row already written met the four,
-- so it meets the one, and a VALIDATE would read the whole ledger while this
-- migration holds the table's lock, stopping every call that books for as
-- long. New rows are checked either way. (A DBA may run
-- `ALTER TABLE credit.ledger_entry VALIDATE CONSTRAINT ledger_entry_ok`
-- later: it blocks no writes.)

SET ROLE credit_owner;

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

ALTER TABLE credit.ledger_entry
    DROP CONSTRAINT ledger_entry_entry_type_check,
    DROP CONSTRAINT ledger_entry_check,
    DROP CONSTRAINT ledger_entry_due_date_check,
    DROP CONSTRAINT ledger_entry_check2,
    ADD CONSTRAINT ledger_entry_ok CHECK (credit._ledger_entry_ok(entry_type, amount, due_date, debit_id)) NOT VALID;

RESET ROLE;
