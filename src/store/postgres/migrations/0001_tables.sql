-- perfhook's tables. Names sort byte-wise (COLLATE "C"), so listings and cursors order
-- exactly as the other backends do.

CREATE TABLE perfhook_events (
    endpoint    text COLLATE "C" NOT NULL,
    id          text COLLATE "C" NOT NULL,
    kind        text NOT NULL,
    livemode    boolean,
    received_at bigint NOT NULL,
    expires_at  bigint NOT NULL,
    body        text NOT NULL,
    PRIMARY KEY (endpoint, id)
);
CREATE INDEX perfhook_events_expiry ON perfhook_events (expires_at);
CREATE INDEX perfhook_events_listing ON perfhook_events (received_at, endpoint, id);

CREATE TABLE perfhook_jobs (
    endpoint       text COLLATE "C" NOT NULL,
    event_id       text COLLATE "C" NOT NULL,
    notifier       text COLLATE "C" NOT NULL,
    status         text NOT NULL,
    attempts       integer NOT NULL,
    last_error     text,
    due_ms         bigint NOT NULL,
    digest         boolean NOT NULL DEFAULT false,
    lease_token    bigint,
    lease_until_ms bigint,
    PRIMARY KEY (endpoint, event_id, notifier),
    FOREIGN KEY (endpoint, event_id) REFERENCES perfhook_events ON DELETE CASCADE
);
-- The outbox: one notifier's pending jobs in due order.
CREATE INDEX perfhook_jobs_queue ON perfhook_jobs (notifier, due_ms) WHERE status = 'pending';
CREATE SEQUENCE perfhook_lease_seq;

-- Per budget mark (a SHA-256, never a name): thresholds notified, usage figures, cooldown.
CREATE TABLE perfhook_budget_state (
    mark  text PRIMARY KEY,
    state text NOT NULL
);

CREATE TABLE perfhook_api_keys (
    id     text COLLATE "C" PRIMARY KEY,
    record text NOT NULL
);

CREATE SEQUENCE perfhook_refused_seq MINVALUE 0 START 0;
CREATE TABLE perfhook_refused (
    endpoint       text COLLATE "C" NOT NULL,
    received_at_ms bigint NOT NULL,
    seq            bigint NOT NULL,
    source         text NOT NULL,
    reason         text NOT NULL,
    message        text NOT NULL,
    request        bytea NOT NULL,
    PRIMARY KEY (endpoint, received_at_ms, seq)
);

CREATE TABLE perfhook_audit (
    seq   bigint PRIMARY KEY,
    at    bigint NOT NULL,
    entry text NOT NULL
);

CREATE TABLE perfhook_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
