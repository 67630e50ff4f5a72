-- Usage statistics (issue 19): what clients ask for, per day, and how many distinct clients
-- ask (HyperLogLog sketches: a client's id or address is never stored, only registers fed
-- with a keyed hash of it). Rows older than ATLAS_STATS_RETENTION_DAYS are pruned by
-- `atlas-hub admin prune` or the scheduled /api/v1/admin/stats/prune. Forward-only: never
-- edit this file once applied; add 0008_… instead.

-- Request counts. `version`: for checks the version the client runs, for latest lookups the
-- version answered; `offered`: for checks the update offered ('' when none). Empty strings
-- stand for "not given" so every column can be part of the key.
CREATE TABLE usage_daily (
    day       date NOT NULL,
    product   text NOT NULL,
    event     text NOT NULL CHECK (event IN ('check', 'latest')),
    channel   text NOT NULL,
    platform  text NOT NULL,
    bundle    text NOT NULL,
    version   text NOT NULL,
    offered   text NOT NULL,
    count     bigint NOT NULL CHECK (count > 0),
    PRIMARY KEY (day, product, event, channel, platform, bundle, version, offered)
);

CREATE INDEX usage_daily_product_day ON usage_daily (product, day);

-- Distinct clients per day: `all` (anyone who checked or looked up), `version` (clients that
-- reported running a version), `offered` (clients offered `<channel> <version>`). Each
-- instance merges its sketch into the row (register-wise maximum) under the row's lock.
CREATE TABLE usage_clients (
    day        date NOT NULL,
    product    text NOT NULL,
    dimension  text NOT NULL CHECK (dimension IN ('all', 'version', 'offered')),
    value      text NOT NULL,
    registers  bytea NOT NULL CHECK (length(registers) = 1024),
    PRIMARY KEY (day, product, dimension, value)
);

CREATE INDEX usage_clients_product_day ON usage_clients (product, day);

CREATE INDEX download_counts_day ON download_counts (day);
