-- The versioned part of what a partition has beyond a single server's
-- schema. `pgcredit migrate --partitions` applies these migrations (yoyo) to
-- every partition after the single server's (sql/migrations), then the
-- functions of sql/proxy/partition.sql.
--
-- Partitions set up before this migration existed already have the table
-- (partition.sql created it on every migrate), so this one migration says
-- IF NOT EXISTS; later ones change it with plain DDL.

SET ROLE credit_owner;

-- One row: which partition this is. Written once, when the partition is set
-- up (the identity sequences are strided by it: ids are unique across
-- partitions), and checked by every later migrate.
CREATE TABLE IF NOT EXISTS credit.partition_config (
    one_row          boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    partition_index  integer NOT NULL,
    partition_count  integer NOT NULL CHECK (partition_count > 0 AND partition_count & (partition_count - 1) = 0
                                             AND partition_index BETWEEN 0 AND partition_count - 1),
    hash_fingerprint text NOT NULL,
    configured_at    timestamptz NOT NULL DEFAULT now()
);

RESET ROLE;
