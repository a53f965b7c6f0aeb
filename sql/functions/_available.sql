SET ROLE credit_owner;

-- available = limit in force - reserved - outstanding, for a line row read
-- under its lock (reserved is then current: _lock_line has swept it).
CREATE OR REPLACE FUNCTION credit._available(l credit.line) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until) - l.reserved - l.outstanding
$$;
REVOKE ALL ON FUNCTION credit._available(credit.line) FROM PUBLIC;
