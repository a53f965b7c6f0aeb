\set n random(1, 2000000000)
\set l random(0, 999)
\set deliver random(0, 1)
SELECT code FROM credit.reserve_credit('bench', 's' || :l, 'c' || :client_id || '.' || :n, 100);
\if :deliver
SELECT code FROM credit.convert_to_debit('bench', 's' || :l, 'c' || :client_id || '.' || :n);
\else
SELECT code FROM credit.release_reservation('bench', 's' || :l, 'c' || :client_id || '.' || :n);
\endif
