-- The versioned part of a proxy database: the roles, PL/Proxy, the schemas
-- and the record of the partition list. `pgcredit migrate --partitions`
-- applies these migrations (yoyo) to the proxy only; the functions of
-- sql/proxy/proxy.sql and the generated routing layer come after them.
--
-- Proxies set up before this migration existed already have every object
-- here (proxy.sql created them on every migrate), so this one migration says
-- IF NOT EXISTS; later ones change what it made with plain DDL.

-- The same roles as on a single server (0001_create_schema.sql).
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'credit_owner') THEN
        CREATE ROLE credit_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'credit_app') THEN
        CREATE ROLE credit_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'credit_auditor') THEN
        CREATE ROLE credit_auditor NOLOGIN;
    END IF;
END
$roles$;

-- PL/Proxy is an untrusted language: the routing functions can only be
-- created by a superuser, who then hands them to credit_owner.
CREATE EXTENSION IF NOT EXISTS plproxy;

CREATE SCHEMA IF NOT EXISTS credit AUTHORIZATION credit_owner;
REVOKE ALL ON SCHEMA credit FROM PUBLIC;
GRANT USAGE ON SCHEMA credit TO credit_app, credit_auditor;
-- The PL/Proxy functions: reachable only through the wrappers in credit,
-- which translate their errors. Nobody but credit_owner may use the schema.
CREATE SCHEMA IF NOT EXISTS credit_route AUTHORIZATION credit_owner;
REVOKE ALL ON SCHEMA credit_route FROM PUBLIC;

SET ROLE credit_owner;
ALTER DEFAULT PRIVILEGES FOR ROLE credit_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- One row: what the partitions are, and what the routing layer was built from.
-- The partition list never changes once set (lines would be looked for on the
-- wrong partition); migrate refuses a different one.
CREATE TABLE IF NOT EXISTS credit_route.partition_config (
    one_row          boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    partition_count  integer NOT NULL CHECK (partition_count > 0 AND partition_count & (partition_count - 1) = 0),
    partitions       text[] NOT NULL CHECK (cardinality(partitions) = partition_count),
    hash_fingerprint text NOT NULL,
    layer_digest     text NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

RESET ROLE;
