UPDATE bench.bare SET used = used + 1 WHERE id = 0 AND used + 1 <= lim;
