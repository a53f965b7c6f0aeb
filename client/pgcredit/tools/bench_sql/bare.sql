-- (a) The physical limit: one conditional UPDATE of one row per reservation
-- (bare_hot, bare_spread). Run before baselines.sql, and on its own in the
-- databases of `pgcredit bench --compare-sql`.
CREATE SCHEMA bench;
CREATE TABLE bench.bare (id int PRIMARY KEY, used numeric NOT NULL, lim numeric NOT NULL);
INSERT INTO bench.bare SELECT g, 0, 1e15 FROM generate_series(0, 999) g;
