\set n random(1, 2000000000)
SELECT code FROM credit.reserve_credit('bench', 'hot', :client_id || '.' || :n, 1);
