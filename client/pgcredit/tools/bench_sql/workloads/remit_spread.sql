\set n random(1, 2000000000)
\set l random(0, 999)
SELECT count(*) FROM credit.reserve_credit_batch(array_fill('bench'::text, ARRAY[10]), array_fill('s' || :l, ARRAY[10]), ARRAY(SELECT 'r' || :client_id || '.' || :n || '.' || g FROM generate_series(1, 10) g), array_fill(1::numeric, ARRAY[10]));
SELECT count(*) FROM credit.convert_to_debit_batch(array_fill('bench'::text, ARRAY[10]), array_fill('s' || :l, ARRAY[10]), ARRAY(SELECT 'r' || :client_id || '.' || :n || '.' || g FROM generate_series(1, 10) g));
SELECT code FROM credit.record_payment('bench', 's' || :l, 'r' || :client_id || '.' || :n, 10, ARRAY(SELECT 'r' || :client_id || '.' || :n || '.' || g FROM generate_series(10, 1, -1) g));
