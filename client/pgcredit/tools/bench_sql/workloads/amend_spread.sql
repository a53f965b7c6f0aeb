\set n random(1, 2000000000)
\set l random(0, 999)
SELECT code FROM credit.reserve_credit('bench', 's' || :l, 'a' || :client_id || '.' || :n, 1);
SELECT code FROM credit.amend_reservation('bench', 's' || :l, 'a' || :client_id || '.' || :n, 2, 'a' || :client_id || '.' || :n || '.up');
