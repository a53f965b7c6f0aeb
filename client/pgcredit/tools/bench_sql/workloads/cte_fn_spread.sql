\set n random(1, 2000000000)
\set l random(0, 999)
SELECT bench.cte_reserve(:l, :client_id || '.' || :n);
