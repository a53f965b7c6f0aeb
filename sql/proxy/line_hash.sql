SET ROLE credit_owner;

-- The hash that places a line on a partition: partition = hash & (N - 1),
-- PL/Proxy's mapping for N a power of two. Installed on the proxy, which
-- routes by it, and on every partition, whose reconcile checks that each of
-- its lines is where the proxy looks for it.
--
-- The key is length(wholesaler_id) ':' wholesaler_id retailer_id: the length
-- prefix makes the encoding reversible, so two different lines never share a
-- key ('ab' + 'c' and 'a' + 'bc' would, concatenated plainly).
--
-- hashtext() is PostgreSQL's internal text hash. It has been the same since
-- 8.4 for deterministic collations, but PostgreSQL does not promise that it
-- stays so across major versions, and it differs between little- and
-- big-endian machines. pgcredit records a fingerprint of it on the proxy and
-- on every partition and refuses to migrate when one differs (PARTITIONING.md).
--
-- A NULL id hashes to 0: the call goes to partition 0, whose function refuses
-- the NULL with the same message as a single server.
CREATE OR REPLACE FUNCTION credit._line_hash(wholesaler_id text, retailer_id text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(pg_catalog.hashtext(pg_catalog.length(wholesaler_id)::text || ':' || wholesaler_id || retailer_id), 0)
$$;
REVOKE ALL ON FUNCTION credit._line_hash(text, text) FROM PUBLIC;

-- The fingerprint: the hashes of a fixed set of keys, ASCII and not (the
-- database encoding changes the bytes hashed, so it is compared too).
CREATE OR REPLACE FUNCTION credit._line_hash_fingerprint() RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.md5(pg_catalog.string_agg(credit._line_hash(k.w, k.r)::text, ',' ORDER BY k.n))
      FROM (VALUES (1, 'acme', 'corner-store'), (2, 'a', 'bc'), (3, 'ab', 'c'), (4, '', ''),
                   (5, 'grossiste-é', 'épicerie-ü'), (6, repeat('w', 200), repeat('r', 200))
           ) AS k(n, w, r)
$$;
REVOKE ALL ON FUNCTION credit._line_hash_fingerprint() FROM PUBLIC;

RESET ROLE;
