\set n random(1, 2000000000)
\set l random(0, 999)
SELECT code FROM credit.record_payment('bench', 's' || :l, 'p' || :client_id || '.' || :n, 1);
