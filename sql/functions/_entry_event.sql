SET ROLE credit_owner;

-- The event of a ledger entry other than a DEBIT, written by posting
-- (credit._post_entries) right after the entry's allocation, with the
-- settlements that allocation made (the settlement rows after
-- after_settlement) and the line's figures as the entry left them; then the
-- overdue event, if the entry ended (or began) the line's refusals. Posting
-- calls it for a positive adjustment; the entries that settle open items
-- (payments, reversals, negative adjustments) have theirs written by posting
-- itself, with the same data, from the settlements their allocation returns.
-- A DEBIT's event is its booking's (credit._book_debit). The caller holds
-- the line's lock.
CREATE OR REPLACE FUNCTION credit._entry_event(
    line_id bigint, entry_type text, entry_id bigint, ref text, amount numeric, due_date date, memo text,
    debit_id bigint, applies_to text[], after_settlement bigint)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    l credit.line;
BEGIN
    SELECT * INTO l FROM credit.line x WHERE x.id = _entry_event.line_id;
    PERFORM credit._event(l.wholesaler_id, l.retailer_id,
        CASE entry_type WHEN 'CREDIT' THEN 'payment_recorded' WHEN 'REVERSAL' THEN 'debit_reversed'
                        ELSE 'balance_adjusted' END,
        ref, amount, credit._available(l), jsonb_strip_nulls(jsonb_build_object(
            'ledger_entry_id', entry_id, 'outstanding', round(l.outstanding, 2)::text, 'due_date', due_date,
            'reason', memo, 'applies_to', applies_to,
            'order_ref', (SELECT d.ref FROM credit.ledger_entry d WHERE d.id = _entry_event.debit_id)))
        || jsonb_build_object('settlements', coalesce(credit._settlements(l.id, after_settlement), '[]')));
    IF l.overdue_grace_days IS NOT NULL OR l.overdue_since IS NOT NULL THEN
        PERFORM credit._overdue_event(l.id);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION credit._entry_event(bigint, text, bigint, text, numeric, date, text, bigint, text[], bigint)
    FROM PUBLIC;
