\set n random(1, 2000000000)
\set l random(0, 999)
SELECT bench.model_reserve('s' || :l, 'm' || :client_id || '.' || :n);
