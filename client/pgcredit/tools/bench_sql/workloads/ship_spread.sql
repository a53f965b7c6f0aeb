\set n random(1, 2000000000)
\set l random(0, 999)
SELECT code FROM credit.reserve_credit('bench', 's' || :l, 's' || :client_id || '.' || :n, 2);
SELECT code FROM credit.convert_to_debit('bench', 's' || :l, 's' || :client_id || '.' || :n, 1, NULL, 's' || :client_id || '.' || :n || '.1');
SELECT code FROM credit.convert_to_debit('bench', 's' || :l, 's' || :client_id || '.' || :n, 1, NULL, 's' || :client_id || '.' || :n || '.2');
