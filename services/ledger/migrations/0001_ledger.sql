-- The ledger's tables. Three of them grow with traffic and are partitioned by month on their
-- time column, so retention drops whole partitions (`liaison ledger retention`) instead of
-- deleting rows. Partitions are created on demand by the ledger (see partitions.py). Every
-- primary key holds the partition key, so INSERT ... ON CONFLICT DO NOTHING makes each write
-- idempotent: a record or dead letter redelivered by RabbitMQ changes nothing.

-- One row per hub decision: envelope metadata, the body as received, the decision.
CREATE TABLE messages (
    decided_at      timestamptz NOT NULL,
    record_id       text        NOT NULL,
    outcome         text        NOT NULL,  -- delivered | partial | refused | duplicate
    message_id      text,                  -- sender/distribution_id, when readable
    sender          text,
    user_id         text,
    distribution_id text,
    message_type    text,
    precedence      text,
    classification  text,
    envelope_status text,                  -- actual | exercise | test
    incident_id     text,
    in_reply_to     text,
    sent_at         timestamptz,
    expires_at      timestamptz,
    code            integer,
    reason          text,
    field_path      text,
    reply_to        text,
    recipient_count integer     NOT NULL DEFAULT 0,
    refused_count   integer     NOT NULL DEFAULT 0,
    replay_of       text,
    replayed_by     text,
    body            bytea,
    body_text       text,
    PRIMARY KEY (decided_at, record_id)
) PARTITION BY RANGE (decided_at);

CREATE INDEX messages_message_id ON messages (message_id);
CREATE INDEX messages_sender ON messages (sender, decided_at DESC, record_id DESC);
CREATE INDEX messages_type ON messages (message_type, decided_at DESC, record_id DESC);
CREATE INDEX messages_incident ON messages (incident_id, decided_at DESC) WHERE incident_id IS NOT NULL;
CREATE INDEX messages_text ON messages USING gin (to_tsvector('simple', coalesce(body_text, '')));

-- Each recipient a decision resolved (and from which addresses), or refused and why.
CREATE TABLE recipients (
    decided_at timestamptz NOT NULL,
    record_id  text        NOT NULL,
    org        text        NOT NULL,
    message_id text,
    via        text[]      NOT NULL DEFAULT '{}',
    refused    boolean     NOT NULL,
    code       integer,
    reason     text,
    PRIMARY KEY (decided_at, record_id, org)
) PARTITION BY RANGE (decided_at);

CREATE INDEX recipients_org ON recipients (org, decided_at DESC);
CREATE INDEX recipients_message ON recipients (message_id, org);

-- The lifecycle of each recipient copy (org set) or of the message itself (org NULL):
-- decided, in_inbox, refused, duplicate, receipt_<level>, expired, rejected, dead_lettered,
-- kept (refused original in the dead-letter queue), replayed.
CREATE TABLE events (
    occurred_at timestamptz NOT NULL,
    event_key   text        NOT NULL,
    message_id  text,
    org         text,
    kind        text        NOT NULL,
    record_id   text,
    detail      jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (occurred_at, event_key)
) PARTITION BY RANGE (occurred_at);

CREATE INDEX events_message ON events (message_id, occurred_at);
CREATE INDEX events_org ON events (org, kind, occurred_at DESC);

-- The ledger's own copy of every dead letter (hub refusals and inbox dead letters), which the
-- console replays from. Rows older than the retention horizon are deleted with the partitions.
CREATE TABLE dead_letters (
    dead_letter_id text PRIMARY KEY,
    kept_at        timestamptz NOT NULL,
    message_id     text,
    source_queue   text,
    reason         text        NOT NULL,
    code           integer,
    routing_key    text        NOT NULL,
    user_id        text,
    message_type   text,
    headers        jsonb       NOT NULL DEFAULT '{}',
    body           bytea       NOT NULL,
    replayed_at    timestamptz,
    replayed_by    text
);
CREATE INDEX dead_letters_kept ON dead_letters (kept_at DESC);

-- What reached the ledger queue but could not be read: kept, never silently dropped.
CREATE TABLE unreadable (
    id          bigserial   PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    reason      text        NOT NULL,
    properties  jsonb       NOT NULL DEFAULT '{}',
    body        bytea       NOT NULL
);
