-- Baseline (a) of `pgcredit bench`, run before baselines.sql; alone in the
-- A/B's databases (baselines.sql creates roles, once per cluster).
CREATE SCHEMA bench;
-- (a) The physical limit: one conditional UPDATE of one row per reservation.
CREATE TABLE bench.bare (id int PRIMARY KEY, used numeric NOT NULL, lim numeric NOT NULL);
INSERT INTO bench.bare SELECT g, 0, 1e15 FROM generate_series(0, 999) g;
