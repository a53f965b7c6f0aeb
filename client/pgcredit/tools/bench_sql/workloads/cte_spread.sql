\set n random(1, 2000000000)
\set l random(0, 999)
WITH h AS (INSERT INTO bench.hold (line_id, order_ref, amount) VALUES (:l, :client_id || '.' || :n, 1) RETURNING line_id)
UPDATE bench.bare SET used = used + 1 WHERE id = (SELECT line_id FROM h) AND used + 1 <= lim;
