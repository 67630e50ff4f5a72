-- Abuse limits (lib/domain/limits.rs): one GCRA bucket per key, shared by every function
-- instance. Keys: `presign:<actor>`, `publish:<actor>`, `authfail:<client address>`.
-- Forward-only: never edit this file once applied; add 0003_… instead.

-- Unlogged: a bucket update writes no WAL, so taking from a bucket never waits for a WAL
-- flush at commit (presign and publish do it on every call). A database crash empties the
-- table, which only forgets recent counts.
CREATE UNLOGGED TABLE rate_limits (
    key  text PRIMARY KEY,
    -- Theoretical arrival time: the bucket is empty again at `tat`; a request fits while
    -- `tat + period/count - now() <= period`.
    tat  timestamptz NOT NULL
);
CREATE INDEX rate_limits_tat ON rate_limits (tat);

-- Takes one request from bucket `p_key` (`p_count` per `p_period_secs`, in bursts of up to
-- `p_count`). Returns 0 when the request fits (it is counted), else the seconds until it
-- would; a refused request is not counted. The row lock serialises concurrent takes.
CREATE FUNCTION atlas_rate_take(p_key text, p_count integer, p_period_secs double precision)
RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    t_now     timestamptz := clock_timestamp();
    period    interval := make_interval(secs => p_period_secs);
    emission  interval := make_interval(secs => p_period_secs / p_count);
    -- Intervals hold microseconds: `p_count` emissions may add up to `p_count` µs too much.
    slack     interval := make_interval(secs => p_count * 1e-6);
    cur       timestamptz;
    next_tat  timestamptz;
BEGIN
    INSERT INTO rate_limits AS r (key, tat) VALUES (p_key, t_now)
    ON CONFLICT (key) DO UPDATE SET tat = r.tat
    RETURNING r.tat INTO cur;
    next_tat := greatest(cur, t_now) + emission;
    IF next_tat - t_now > period + slack THEN
        RETURN extract(epoch FROM next_tat - period - t_now)::double precision;
    END IF;
    UPDATE rate_limits SET tat = next_tat WHERE key = p_key;
    -- Buckets that are empty again hold nothing: forget them now and then.
    IF random() < 0.01 THEN
        DELETE FROM rate_limits WHERE tat < t_now - interval '1 minute';
    END IF;
    RETURN 0;
END
$$;
