-- The counts /metrics shows (stored events, pending jobs, dead jobs), kept by statement
-- triggers so reading them is O(1) instead of a count(*) over the tables every few seconds
-- on every replica. Each counter is spread over 16 rows, chosen by the writing backend, so
-- concurrent writers seldom wait on one row; a reader sums them.
CREATE TABLE perfhook_counts (
    name  text NOT NULL,
    shard integer NOT NULL,
    value bigint NOT NULL,
    PRIMARY KEY (name, shard)
);

CREATE FUNCTION perfhook_count(counter text, delta bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO perfhook_counts AS c (name, shard, value)
    VALUES (counter, pg_backend_pid() % 16, delta)
    ON CONFLICT (name, shard) DO UPDATE SET value = c.value + EXCLUDED.value
$$;

CREATE FUNCTION perfhook_events_counted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    delta bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO delta FROM new_rows;
    ELSE
        SELECT -count(*) INTO delta FROM old_rows;
    END IF;
    IF delta <> 0 THEN
        PERFORM perfhook_count('events', delta);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION perfhook_jobs_counted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    pending bigint;
    dead bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'dead')
        INTO pending, dead FROM new_rows;
    ELSE
        SELECT -count(*) FILTER (WHERE status = 'pending'), -count(*) FILTER (WHERE status = 'dead')
        INTO pending, dead FROM old_rows;
    END IF;
    IF pending <> 0 THEN
        PERFORM perfhook_count('pending', pending);
    END IF;
    IF dead <> 0 THEN
        PERFORM perfhook_count('dead', dead);
    END IF;
    RETURN NULL;
END
$$;

-- A job's status changes one row at a time (a finish, a requeue): a row trigger, called
-- only when the status does change, so claims and lease ends cost nothing.
CREATE FUNCTION perfhook_job_status_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('pending', 'dead') THEN
        PERFORM perfhook_count(OLD.status, -1);
    END IF;
    IF NEW.status IN ('pending', 'dead') THEN
        PERFORM perfhook_count(NEW.status, 1);
    END IF;
    RETURN NULL;
END
$$;

-- Triggers first: creating them locks out writers until this migration commits, so the
-- figures below count every row written before, and the triggers every row after.
CREATE TRIGGER perfhook_events_inserted AFTER INSERT ON perfhook_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION perfhook_events_counted();
CREATE TRIGGER perfhook_events_deleted AFTER DELETE ON perfhook_events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION perfhook_events_counted();
CREATE TRIGGER perfhook_jobs_inserted AFTER INSERT ON perfhook_jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION perfhook_jobs_counted();
CREATE TRIGGER perfhook_jobs_status AFTER UPDATE OF status ON perfhook_jobs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION perfhook_job_status_changed();
CREATE TRIGGER perfhook_jobs_deleted AFTER DELETE ON perfhook_jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION perfhook_jobs_counted();

INSERT INTO perfhook_counts (name, shard, value)
SELECT 'events', 0, count(*) FROM perfhook_events;
INSERT INTO perfhook_counts (name, shard, value)
SELECT 'pending', 0, count(*) FROM perfhook_jobs WHERE status = 'pending';
INSERT INTO perfhook_counts (name, shard, value)
SELECT 'dead', 0, count(*) FROM perfhook_jobs WHERE status = 'dead';
