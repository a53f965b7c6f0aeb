SET ROLE credit_owner;

-- Proves the running totals and links against the rows. No rows: healthy.
-- Reads whole tables: a DBA check, not something for the request path.
CREATE OR REPLACE FUNCTION credit.reconcile()
RETURNS TABLE (check_name text, wholesaler_id text, retailer_id text,
               expected numeric, actual numeric, detail text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    -- line.reserved = what its active holds still hold: amount less what was
    -- shipped (expired-but-unswept still count here: the sweep, not the
    -- reader, moves the stored total).
    SELECT 'reserved_total', l.wholesaler_id, l.retailer_id, coalesce(h.total, 0), l.reserved,
           'line.reserved differs from the remaining amounts of its active holds'
      FROM credit.line l
      LEFT JOIN (SELECT r.line_id, sum(r.amount - coalesce(r.converted_amount, 0)) AS total FROM credit.reservation r
                  WHERE r.status = 'active' GROUP BY r.line_id) h ON h.line_id = l.id
     WHERE l.reserved <> coalesce(h.total, 0)
    UNION ALL
    SELECT 'outstanding_total', l.wholesaler_id, l.retailer_id, coalesce(e.total, 0), l.outstanding,
           'line.outstanding differs from DEBIT - CREDIT - REVERSAL + ADJUSTMENT'
      FROM credit.line l
      LEFT JOIN (SELECT x.line_id,
                        sum(CASE WHEN x.entry_type IN ('CREDIT', 'REVERSAL') THEN -x.amount ELSE x.amount END) AS total
                   FROM credit.ledger_entry x GROUP BY x.line_id) e ON e.line_id = l.id
     WHERE l.outstanding <> coalesce(e.total, 0)
    UNION ALL
    -- A hold's DEBITs (its shipments and its final conversion) sum to its
    -- converted_amount at every moment, the latest is the one it points to,
    -- and a converted hold has at least one.
    SELECT 'converted_hold_debit', l.wholesaler_id, l.retailer_id, coalesce(r.converted_amount, 0),
           coalesce(d.total, 0),
           format('hold %s (order_ref %s, %s) has %s DEBIT entries summing to %s, converted_amount %s, latest %s, '
                  'linked %s', r.id, r.order_ref, r.status, coalesce(d.n, 0), coalesce(d.total, 0),
                  coalesce(r.converted_amount::text, 'none'), coalesce(d.id::text, 'none'),
                  coalesce(r.debit_entry_id::text, 'none'))
      FROM credit.reservation r
      JOIN credit.line l ON l.id = r.line_id
      LEFT JOIN (SELECT x.reservation_id, count(*) AS n, sum(x.amount) AS total, max(x.id) AS id
                   FROM credit.ledger_entry x WHERE x.entry_type = 'DEBIT'
                  GROUP BY x.reservation_id) d ON d.reservation_id = r.id
     WHERE coalesce(d.total, 0) <> coalesce(r.converted_amount, 0)
        OR d.id IS DISTINCT FROM r.debit_entry_id
        OR r.status = 'converted' AND d.n IS NULL
    UNION ALL
    -- Every DEBIT comes from a hold of its line, which points to it or to a later one.
    SELECT 'debit_hold_link', l.wholesaler_id, l.retailer_id, NULL, e.amount,
           format('DEBIT %s (ref %s) points to hold %s in status %s', e.id, e.ref,
                  coalesce(e.reservation_id::text, 'none'), coalesce(r.status, 'none'))
      FROM credit.ledger_entry e
      JOIN credit.line l ON l.id = e.line_id
      LEFT JOIN credit.reservation r ON r.id = e.reservation_id
     WHERE e.entry_type = 'DEBIT'
       AND (r.id IS NULL OR r.line_id <> e.line_id OR r.debit_entry_id IS NULL OR r.debit_entry_id < e.id)
    UNION ALL
    -- A known status, and each state with its timestamp and amounts (checked
    -- here rather than by constraints on the hold row, which every
    -- reservation would pay for: BENCHMARKS.md): an ended hold has
    -- converted + released = amount; an active one has released nothing and
    -- something left to hold.
    SELECT 'hold_state', l.wholesaler_id, l.retailer_id, r.amount,
           coalesce(r.converted_amount, 0) + coalesce(r.released_amount, 0),
           format('hold %s (order_ref %s) is %s without its timestamp or amounts', r.id, r.order_ref, r.status)
      FROM credit.reservation r JOIN credit.line l ON l.id = r.line_id
     WHERE r.status NOT IN ('active', 'released', 'converted', 'expired')
        OR (r.status = 'active' AND (r.released_amount IS NOT NULL OR coalesce(r.converted_amount, 0) >= r.amount))
        OR (r.status <> 'active'
            AND coalesce(r.converted_amount, 0) + r.released_amount IS DISTINCT FROM r.amount)
        OR (r.status = 'released' AND r.released_at IS NULL)
        OR (r.status = 'converted' AND (r.converted_at IS NULL OR r.debit_entry_id IS NULL))
        OR (r.status = 'expired' AND r.expired_at IS NULL)
    UNION ALL
    -- Each amendment of a hold starts where the one before it ended (the
    -- first, at the amount the hold was reserved with), and the last one
    -- ended at the hold's amount.
    SELECT 'amendment_chain', l.wholesaler_id, l.retailer_id, a.expected, a.previous_amount,
           format('amendment %s (order_ref %s) starts at %s where %s was expected', a.amend_ref, a.order_ref,
                  a.previous_amount, coalesce(a.expected::text, 'nothing'))
      FROM (SELECT x.*, coalesce(lag(x.new_amount) OVER (PARTITION BY x.line_id, x.order_ref ORDER BY x.id),
                                 r.original_amount) AS expected
              FROM credit.amendment x
              LEFT JOIN credit.reservation r ON r.line_id = x.line_id AND r.order_ref = x.order_ref) a
      JOIN credit.line l ON l.id = a.line_id
     WHERE a.previous_amount IS DISTINCT FROM a.expected
    UNION ALL
    SELECT 'amendment_chain', l.wholesaler_id, l.retailer_id, r.amount, a.new_amount,
           format('hold %s (order_ref %s) has amount %s, its last amendment %s set %s', r.id, r.order_ref,
                  r.amount, a.amend_ref, a.new_amount)
      FROM credit.reservation r
      JOIN credit.line l ON l.id = r.line_id
      JOIN LATERAL (SELECT x.amend_ref, x.new_amount FROM credit.amendment x
                     WHERE x.line_id = r.line_id AND x.order_ref = r.order_ref
                     ORDER BY x.id DESC LIMIT 1) a ON true
     WHERE r.original_amount IS NOT NULL AND a.new_amount <> r.amount
    UNION ALL
    SELECT 'amendment_chain', l.wholesaler_id, l.retailer_id, NULL, r.original_amount,
           format('hold %s (order_ref %s) has an original amount but no amendment', r.id, r.order_ref)
      FROM credit.reservation r
      JOIN credit.line l ON l.id = r.line_id
     WHERE r.original_amount IS NOT NULL
       AND NOT EXISTS (SELECT FROM credit.amendment x WHERE x.line_id = r.line_id AND x.order_ref = r.order_ref)
    UNION ALL
    SELECT 'hold_line', NULL, NULL, NULL, r.amount,
           format('hold %s (order_ref %s) belongs to no line (line_id %s)', r.id, r.order_ref, r.line_id)
      FROM credit.reservation r
     WHERE NOT EXISTS (SELECT FROM credit.line l WHERE l.id = r.line_id)
    UNION ALL
    SELECT 'hold_amount', l.wholesaler_id, l.retailer_id, NULL, r.amount,
           format('hold %s (order_ref %s) has an amount that is not a number in (0, 10^15]', r.id, r.order_ref)
      FROM credit.reservation r JOIN credit.line l ON l.id = r.line_id
     -- NaN sorts above every number and Infinity above 10^15.
     WHERE r.amount <= 0 OR r.amount > 1e15 OR r.released_amount < 0 OR r.converted_amount < 0
    UNION ALL
    SELECT 'reversal_exceeds_debit', l.wholesaler_id, l.retailer_id, d.amount, v.total,
           format('reversals of DEBIT %s (ref %s) exceed it', d.id, d.ref)
      FROM (SELECT x.debit_id, sum(x.amount) AS total FROM credit.ledger_entry x
             WHERE x.entry_type = 'REVERSAL' GROUP BY x.debit_id) v
      JOIN credit.ledger_entry d ON d.id = v.debit_id
      JOIN credit.line l ON l.id = d.line_id
     WHERE v.total > d.amount
    UNION ALL
    -- The allocation rule's identity: unpaid open items less unapplied credit
    -- is what the line owes.
    SELECT 'allocation_identity', l.wholesaler_id, l.retailer_id, l.outstanding,
           coalesce(o.unpaid, 0) - l.unapplied,
           'sum of unpaid open items - unapplied credit differs from outstanding'
      FROM credit.line l
      LEFT JOIN (SELECT x.line_id, sum(x.unpaid) AS unpaid FROM credit.open_item x GROUP BY x.line_id) o
        ON o.line_id = l.id
     WHERE l.unapplied IS NULL OR coalesce(o.unpaid, 0) - l.unapplied <> l.outstanding
    UNION ALL
    -- Each item's unpaid amount is its amount less its settlements, and only
    -- unpaid items (with their own due date) are open items.
    SELECT 'open_item', l.wholesaler_id, l.retailer_id, i.amount - coalesce(s.total, 0), o.unpaid,
           format('item %s (%s %s) has amount %s, settlements %s, open item %s due %s', i.id, i.entry_type, i.ref,
                  i.amount, coalesce(s.total, 0), coalesce(o.unpaid::text, 'none'), coalesce(o.due_date::text, '-'))
      FROM credit.ledger_entry i
      JOIN credit.line l ON l.id = i.line_id
      LEFT JOIN (SELECT x.item_id, sum(x.amount) AS total FROM credit.settlement x GROUP BY x.item_id) s
        ON s.item_id = i.id
      LEFT JOIN credit.open_item o ON o.line_id = i.line_id AND o.entry_id = i.id
     WHERE (i.entry_type = 'DEBIT' OR i.entry_type = 'ADJUSTMENT' AND i.amount > 0)
       AND (i.amount - coalesce(s.total, 0) IS DISTINCT FROM coalesce(o.unpaid, 0)
            OR o.unpaid <= 0 OR o.due_date <> coalesce(i.due_date, i.created_at::date)
            OR i.amount - coalesce(s.total, 0) < 0)
    UNION ALL
    SELECT 'open_item_entry', l.wholesaler_id, l.retailer_id, NULL, o.unpaid,
           format('open item for entry %s is not a DEBIT or positive ADJUSTMENT of this line', o.entry_id)
      FROM credit.open_item o
      JOIN credit.line l ON l.id = o.line_id
     WHERE NOT EXISTS (SELECT FROM credit.ledger_entry i
                        WHERE i.id = o.entry_id AND i.line_id = o.line_id
                          AND (i.entry_type = 'DEBIT' OR i.entry_type = 'ADJUSTMENT' AND i.amount > 0))
    UNION ALL
    -- Every settlement settles an item of its own line (the foreign key
    -- proves only that the entry exists).
    SELECT 'settlement_item', l.wholesaler_id, l.retailer_id, NULL, s.amount,
           format('settlement %s names entry %s, not a DEBIT or positive ADJUSTMENT of its line', s.id, s.item_id)
      FROM credit.settlement s
      LEFT JOIN credit.line l ON l.id = s.line_id
     WHERE NOT EXISTS (SELECT FROM credit.ledger_entry i
                        WHERE i.id = s.item_id AND i.line_id = s.line_id
                          AND (i.entry_type = 'DEBIT' OR i.entry_type = 'ADJUSTMENT' AND i.amount > 0))
    UNION ALL
    -- Unapplied credit is the money in the retailer's favour (payments,
    -- negative adjustments, reversals) that no settlement has used; while any
    -- is left no item may stay open, and the oldest open item is on the line.
    SELECT 'unapplied_credit', l.wholesaler_id, l.retailer_id, coalesce(c.total, 0) - coalesce(s.total, 0),
           l.unapplied,
           CASE WHEN l.unapplied > 0 AND o.oldest IS NOT NULL
                THEN 'unapplied credit left while items are open'
                WHEN l.oldest_unpaid_due IS DISTINCT FROM o.oldest
                THEN format('line.oldest_unpaid_due is %s, oldest open item is due %s', l.oldest_unpaid_due, o.oldest)
                ELSE 'line.unapplied differs from credits less settlements' END
      FROM credit.line l
      LEFT JOIN (SELECT x.line_id, sum(abs(x.amount)) AS total FROM credit.ledger_entry x
                  WHERE x.entry_type IN ('CREDIT', 'REVERSAL') OR x.entry_type = 'ADJUSTMENT' AND x.amount < 0
                  GROUP BY x.line_id) c ON c.line_id = l.id
      LEFT JOIN (SELECT x.line_id, sum(x.amount) AS total FROM credit.settlement x GROUP BY x.line_id) s
        ON s.line_id = l.id
      LEFT JOIN (SELECT x.line_id, min(x.due_date) AS oldest FROM credit.open_item x GROUP BY x.line_id) o
        ON o.line_id = l.id
     WHERE l.unapplied IS DISTINCT FROM coalesce(c.total, 0) - coalesce(s.total, 0)
        OR l.unapplied > 0 AND o.oldest IS NOT NULL
        OR l.oldest_unpaid_due IS DISTINCT FROM o.oldest
    UNION ALL
    -- Exposure only grows past the limit through a limit decrease or a positive
    -- adjustment made since the line's last reservation or raise (each was
    -- checked against the limit); anything else means credit was overspent.
    SELECT 'over_limit', l.wholesaler_id, l.retailer_id, k.credit_limit, l.reserved + l.outstanding,
           'reserved + outstanding exceeds credit_limit with no later limit decrease or positive adjustment'
      FROM credit.line l
      CROSS JOIN LATERAL (SELECT credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until)
                                 AS credit_limit) k
      -- A raise is checked as a reservation is.
      LEFT JOIN LATERAL (SELECT greatest((SELECT max(r.created_at) FROM credit.reservation r WHERE r.line_id = l.id),
                                         (SELECT max(a.created_at) FROM credit.amendment a
                                           WHERE a.line_id = l.id AND a.new_amount > a.previous_amount)) AS at) last
        ON true
     WHERE l.reserved + l.outstanding > k.credit_limit
       -- A temporary limit that has ended is a decrease at its valid_until.
       AND NOT EXISTS (SELECT FROM credit.line_event ev
                        WHERE ev.line_id = l.id AND ev.kind = 'limit_changed'
                          AND (ev.new_limit < ev.old_limit AND ev.created_at >= coalesce(last.at, '-infinity')
                               OR ev.valid_until <= now() AND ev.valid_until >= coalesce(last.at, '-infinity')))
       AND NOT EXISTS (SELECT FROM credit.ledger_entry a
                        WHERE a.line_id = l.id AND a.entry_type = 'ADJUSTMENT' AND a.amount > 0
                          AND a.created_at >= coalesce(last.at, '-infinity'))
$$;
REVOKE ALL ON FUNCTION credit.reconcile() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.reconcile() TO credit_app, credit_auditor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.reconcile() IS $doc$Proves the running totals and links against the rows; no rows means healthy. Checks: reserved_total and
outstanding_total (each line's totals against its holds and ledger), converted_hold_debit and
debit_hold_link (every converted hold has exactly one DEBIT and every DEBIT points to its converted hold),
hold_state, hold_line and hold_amount (well-formed holds), reversal_exceeds_debit, allocation_identity
(unpaid open items - unapplied credit = outstanding), open_item, open_item_entry, settlement_item and unapplied_credit
(the allocation rule's rows), over_limit (exposure above the limit not explained by a later limit decrease or
a positive adjustment). It reads whole tables: a DBA's check, O(history); record_reconcile runs it on a
schedule for the monitoring views.
Columns:
  check_name: which check found the row (above).
  wholesaler_id, retailer_id: the line concerned; NULL where the row belongs to no line.
  expected: what the rows say the figure should be.
  actual: what is stored.
  detail: the finding in words, with the ids concerned.$doc$;
