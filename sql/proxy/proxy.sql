-- The functions every proxy database has, whatever the API: the error
-- translation every routing wrapper uses, and the merge of reconcile counts.
-- Applied by `pgcredit migrate --partitions` after the proxy's migrations
-- (sql/proxy/proxy_migrations: roles, PL/Proxy, schemas, tables), with the
-- routing layer generated from the partitions' own catalog
-- (client/pgcredit/partitions/generator.py), whenever either changes. The
-- generated objects are dropped and created again each time; the functions
-- defined here (and in line_hash.sql) are kept, by their names in these files.

SET ROLE credit_owner;

-- Every routing wrapper calls this from its exception handler. Errors the
-- partition raised come back as PL/Proxy reports them ("fn(5): [db] REMOTE
-- ERROR: message"); they are raised again with the partition's own SQLSTATE,
-- message, detail and hint, exactly as a single server reports them. A
-- partition that cannot be reached is 08001 and a connection lost during a
-- call 08006, naming the partition: clients retry both (with the same
-- idempotency key, which makes a call that did commit a replay). Anything
-- else returns, and the caller re-raises it unchanged.
CREATE OR REPLACE FUNCTION credit._partition_error(
    state text, message text, detail text, hint text, partition_index integer, partition_count integer)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_where text := CASE WHEN partition_index IS NULL THEN 'a partition'
                         ELSE format('partition %s of %s', partition_index, partition_count) END;
    v_message text;
    v_detail text := nullif(regexp_replace(detail, '^Remote detail: ', ''), '');
    v_hint text := nullif(regexp_replace(hint, '^Remote hint: ', ''), '');
BEGIN
    IF message ~ '^PL/Proxy function ' THEN
        v_message := rtrim(substring(message FROM '^PL/Proxy function \S+: (.*)$'), E'\n\t ');
        IF v_message ~ '^\[[^]]*\] PQconnect(Start|Poll): ' OR v_message ~ '^connect timeout to: ' THEN
            RAISE USING ERRCODE = '08001',
                MESSAGE = format('%s is unreachable: %s', v_where,
                                 regexp_replace(v_message, '^\[[^]]*\] PQconnect(Start|Poll): ', '')),
                HINT = 'Only lines stored on that partition are affected. Retry with the same idempotency key.';
        ELSIF v_message ~ '^\[[^]]*\] (PQconsumeInput|PQsendQuery|PQsendQueryParams|PQflush): '
              OR v_message = 'query timeout' THEN
            RAISE USING ERRCODE = '08006',
                MESSAGE = format('lost the connection to %s during the call: %s', v_where, v_message),
                HINT = 'The call may have taken effect there. Retry with the same idempotency key.';
        END IF;
        RETURN;
    END IF;
    IF message !~ '^\S+\(\d+\): \[[^]]*\] REMOTE [A-Z]+: ' THEN
        RETURN;
    END IF;
    v_message := regexp_replace(message, '^\S+\(\d+\): \[[^]]*\] REMOTE [A-Z]+: ', '');
    -- The partition's server closed the connection (a shutdown, a crash, a
    -- terminated backend): as a lost connection, naming the partition.
    IF state ~ '^(08|57P0)' THEN
        RAISE USING ERRCODE = '08006',
            MESSAGE = format('lost the connection to %s during the call: %s', v_where, v_message),
            HINT = 'The call may have taken effect there. Retry with the same idempotency key.';
    END IF;
    IF v_detail IS NULL AND v_hint IS NULL THEN
        RAISE USING ERRCODE = state, MESSAGE = v_message;
    ELSIF v_hint IS NULL THEN
        RAISE USING ERRCODE = state, MESSAGE = v_message, DETAIL = v_detail;
    ELSIF v_detail IS NULL THEN
        RAISE USING ERRCODE = state, MESSAGE = v_message, HINT = v_hint;
    ELSE
        RAISE USING ERRCODE = state, MESSAGE = v_message, DETAIL = v_detail, HINT = v_hint;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION credit._partition_error(text, text, text, text, integer, integer) FROM PUBLIC;

-- Merges the {check_name: count} objects of the partitions' last reconcile
-- runs (monitor_reconcile on the proxy): counts of the same check add up.
CREATE OR REPLACE FUNCTION credit._jsonb_counts_add(total jsonb, item jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(jsonb_object_agg(e.key, e.n), '{}')
      FROM (SELECT x.key, sum(x.value::numeric) AS n
              FROM (SELECT * FROM jsonb_each_text(coalesce(total, '{}'))
                    UNION ALL SELECT * FROM jsonb_each_text(coalesce(item, '{}'))) x
             GROUP BY x.key) e
$$;
REVOKE ALL ON FUNCTION credit._jsonb_counts_add(jsonb, jsonb) FROM PUBLIC;
CREATE OR REPLACE AGGREGATE credit._jsonb_counts_sum(jsonb) (
    SFUNC = credit._jsonb_counts_add, STYPE = jsonb, INITCOND = '{}');
REVOKE ALL ON FUNCTION credit._jsonb_counts_sum(jsonb) FROM PUBLIC;

RESET ROLE;
