SET ROLE credit_owner;

-- Locks the lines of a bulk call, each once, in ascending id order: any two
-- calls that share lines take them in the same order, so they cannot
-- deadlock over them (ORDER BY runs before the row locks are taken). NULLs
-- (items without a line) are skipped. The wait is bounded like _lock_line's,
-- by the caller's lock_timeout clause.
CREATE OR REPLACE FUNCTION credit._lock_lines(line_ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM FROM credit.line x WHERE x.id = ANY (line_ids)
     ORDER BY x.id
       FOR NO KEY UPDATE;
END
$$;
REVOKE ALL ON FUNCTION credit._lock_lines(bigint[]) FROM PUBLIC;
