-- The tamper-evident chain (services/ledger/chain.py). Each messages row gains what proves it:
-- the SHA-256 of its body (kept even when the body is not) and the sender's signature as the
-- hub received it (the raw x-liaison-signature header) with its key id, and for a delivery
-- whether the hub verified it or let an unsigned message through ("absent": a partner migrating
-- to signing with signatures = "when_present").
ALTER TABLE messages
    ADD COLUMN body_sha256      text,
    ADD COLUMN signature        text,
    ADD COLUMN signature_kid    text,
    ADD COLUMN signature_status text;

-- One link per messages row, in append order, one chain per UTC day of decided_at. A link's
-- hash covers the previous link's hash and the record's hash, so editing, deleting or
-- reordering any row or link breaks every later link up to the next signed head.
-- Appends are serialised per day by a transaction-scoped advisory lock (store.py).
CREATE TABLE chain_links (
    day         date        NOT NULL,
    seq         bigint      NOT NULL,
    record_id   text        NOT NULL,
    decided_at  timestamptz NOT NULL,
    record_hash text        NOT NULL,  -- hex SHA-256 of the record's canonical bytes
    prev_hash   text        NOT NULL,  -- link_hash of seq - 1 (64 zeros for seq 1)
    link_hash   text        NOT NULL,  -- hex SHA-256 of the link's canonical bytes
    linked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, seq),
    UNIQUE (day, record_id)
);

-- Heads signed by the ledger (JWS, Ed25519): the chain of `day` up to `seq` ends in `head`.
CREATE TABLE chain_heads (
    day       date        NOT NULL,
    seq       bigint      NOT NULL,
    head      text        NOT NULL,
    signed_at timestamptz NOT NULL,
    kid       text        NOT NULL,
    jws       text        NOT NULL,
    PRIMARY KEY (day, seq)
);

-- The head signer looks only at days linked to since its last pass.
CREATE INDEX chain_links_linked ON chain_links (linked_at);
