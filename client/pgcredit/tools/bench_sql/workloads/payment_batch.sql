\set n random(1, 2000000000)
SELECT count(*) FROM credit.record_payment_batch(array_fill('bench'::text, ARRAY[100]), ARRAY(SELECT 's' || (random() * 999)::int FROM generate_series(1, 100)), ARRAY(SELECT 'p' || :client_id || '.' || :n || '.' || g FROM generate_series(1, 100) g), array_fill(1::numeric, ARRAY[100]));
