-- The counts /metrics shows (stored events, pending jobs, dead jobs), kept by triggers so
-- reading them costs the same at any size, instead of a count(*) over the tables every few
-- seconds on every replica. A change appends a row (name, delta) and never updates one, so
-- writers take no lock on a shared row and cannot wait on, or deadlock with, each other
-- through it; a reader sums the rows, and a replica now and then folds them into one per name.
CREATE TABLE perfhook_counts (
    name  text NOT NULL,
    value bigint NOT NULL
);

CREATE FUNCTION perfhook_count(counter text, delta bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO perfhook_counts (name, value) VALUES (counter, delta)
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
-- figures below count every row written before, and the triggers every row after. Both
-- tables are locked at once, in one order, before any trigger is made.
LOCK TABLE perfhook_events, perfhook_jobs IN SHARE ROW EXCLUSIVE MODE;
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

INSERT INTO perfhook_counts (name, value)
SELECT 'events', count(*) FROM perfhook_events;
INSERT INTO perfhook_counts (name, value)
SELECT 'pending', count(*) FROM perfhook_jobs WHERE status = 'pending';
INSERT INTO perfhook_counts (name, value)
SELECT 'dead', count(*) FROM perfhook_jobs WHERE status = 'dead';
