SET ROLE credit_owner;

-- Builds the open items of a line written before receivables existed
-- (migration 0003 leaves its unapplied NULL) by running its ledger, in
-- order, through the same two functions that every new entry goes through;
-- each settlement is dated at the entry that caused it.
CREATE OR REPLACE FUNCTION credit._build_open_items(line_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    e credit.ledger_entry;
BEGIN
    UPDATE credit.line l SET unapplied = 0.00, oldest_unpaid_due = NULL
     WHERE l.id = _build_open_items.line_id AND l.unapplied IS NULL;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOR e IN SELECT * FROM credit.ledger_entry x WHERE x.line_id = _build_open_items.line_id ORDER BY x.id LOOP
        IF e.entry_type = 'DEBIT' OR e.entry_type = 'ADJUSTMENT' AND e.amount > 0 THEN
            PERFORM credit._allocate_item(e.line_id, e.id, coalesce(e.due_date, e.created_at::date),
                                          e.amount, e.created_at);
        ELSE
            PERFORM credit._allocate_credit(e.line_id, abs(e.amount), e.debit_id, e.created_at);
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION credit._build_open_items(bigint) FROM PUBLIC;

-- Runs on every load of the function files and finds work only after an
-- upgrade from v1. Every function it reaches (_allocate_item,
-- _allocate_credit, _allocate_credits, _arrears_from) sorts before this file,
-- so is loaded by now.
SELECT credit._build_open_items(l.id) FROM credit.line l WHERE l.unapplied IS NULL ORDER BY l.id;
