\set id random(0, 999)
UPDATE bench.bare SET used = used + 1 WHERE id = :id AND used + 1 <= lim;
