\set n random(1, 2000000000)
SELECT count(*) FROM credit.reserve_credit_batch(array_fill('bench'::text, ARRAY[100]), ARRAY(SELECT 's' || (random() * 999)::int FROM generate_series(1, 100)), ARRAY(SELECT 'b' || :client_id || '.' || :n || '.' || g FROM generate_series(1, 100) g), array_fill(1::numeric, ARRAY[100]));
