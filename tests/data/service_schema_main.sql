-- data/service.duckdb as written before schema versioning (the DDL of pipeline/store/service.py
-- on main at 47343a1, copied literally), with rows in every table. Never edit: it stands for
-- the files teams already have. tests/test_service_migrations.py opens it with today's code.

CREATE TABLE IF NOT EXISTS api_keys (
        key_id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        role VARCHAR NOT NULL,
        key_hash VARCHAR NOT NULL,
        scope_user_ids VARCHAR[],       -- NULL: not restricted by user_id
        scope_sources VARCHAR[],        -- NULL: not restricted by source
        created_at TIMESTAMPTZ NOT NULL,
        created_by VARCHAR NOT NULL,
        revoked_at TIMESTAMPTZ);
CREATE SEQUENCE IF NOT EXISTS feedback_seq START 1;
CREATE TABLE IF NOT EXISTS feedback (
        feedback_id BIGINT PRIMARY KEY DEFAULT nextval('feedback_seq'),
        record_id VARCHAR NOT NULL,
        rid BIGINT NOT NULL,
        key_id VARCHAR NOT NULL,
        key_name VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,          -- 'score' | 'up' | 'down'
        score DOUBLE NOT NULL,          -- normalised to [0, 1]: (s - 1) / 4, up = 1, down = 0
        raw_score DOUBLE,               -- the 1..5 score as sent, for kind = 'score'
        comment VARCHAR,
        created_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS query_log (
        ts TIMESTAMPTZ NOT NULL,
        key_id VARCHAR NOT NULL,
        key_name VARCHAR NOT NULL,
        text VARCHAR NOT NULL,
        filters VARCHAR[] NOT NULL,
        mode VARCHAR NOT NULL,
        k INTEGER NOT NULL,
        result_rids BIGINT[] NOT NULL,
        latency_ms DOUBLE NOT NULL,
        status INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS erasures (
        erased_at TIMESTAMPTZ NOT NULL,
        erased_by VARCHAR NOT NULL,
        user_hash VARCHAR NOT NULL,     -- sha256 of the user id, as in data/erasures.txt
        records BIGINT NOT NULL,
        duplicates BIGINT NOT NULL,
        preferences BIGINT NOT NULL,
        pii_redactions BIGINT NOT NULL,
        rejected BIGINT NOT NULL,
        feedback BIGINT NOT NULL,
        index_removed BIGINT NOT NULL);

-- The key of 'bot' is pk_0a1b2c3d4e5f_migration-test-secret (its sha256 below).
INSERT INTO api_keys VALUES
    ('0a1b2c3d4e5f', 'bot', 'reader',
     'f9c34ccfa7fe782d42da1bbc7754a21c23a6f6fcd470352a26330ab6ca00a809', NULL, NULL,
     TIMESTAMPTZ '2026-11-02 09:15:00.123456+00', 'cli:ops', NULL),
    ('aa11bb22cc33', 'app für Zoë', 'writer',
     'ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100',
     ['alice', 'bob ß'], ['web', 'app'],
     TIMESTAMPTZ '2026-11-03 23:59:59+00', 'key:0a1b2c3d4e5f', NULL),
    ('deadbeef0001', 'ops', 'admin',
     '0000000000000000000000000000000000000000000000000000000000000001', NULL, [],
     TIMESTAMPTZ '2026-10-01 00:00:00+00', 'cli:root', TIMESTAMPTZ '2026-11-20 12:00:00+00');

INSERT INTO feedback (record_id, rid, key_id, key_name, kind, score, raw_score, comment,
                      created_at) VALUES
    ('a1', 1042, 'aa11bb22cc33', 'app für Zoë', 'score', 0.75, 4.0, 'good answer',
     TIMESTAMPTZ '2026-11-04 10:00:00+00'),
    ('a1', 1042, 'aa11bb22cc33', 'app für Zoë', 'down', 0.0, NULL, NULL,
     TIMESTAMPTZ '2026-11-04 10:00:01+00'),
    ('b1', -9223372036854775808, 'aa11bb22cc33', 'app für Zoë', 'up', 1.0, NULL,
     E'line one\nline two, "quoted" and ''single''', TIMESTAMPTZ '2026-11-05 08:30:00+00');

INSERT INTO query_log VALUES
    (TIMESTAMPTZ '2026-11-04 10:00:00.5+00', '0a1b2c3d4e5f', 'bot', 'refund for a damaged parcel',
     ['label=support', 'created_at<2024-06-01'], 'hybrid', 10, [1042, 9223372036854775807],
     12.5, 200),
    (TIMESTAMPTZ '2026-11-04 10:00:02+00', '0a1b2c3d4e5f', 'bot', 'zzzz nothing 😀', [],
     'keyword', 3, [], 0.25, 200),
    (TIMESTAMPTZ '2026-11-04 10:00:03+00', 'aa11bb22cc33', 'app für Zoë', 'x', ['colour=red'],
     'vector', 100, [], 1.0, 400);

INSERT INTO erasures VALUES
    (TIMESTAMPTZ '2026-11-21 16:45:00+00', 'key:deadbeef0001',
     '2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90',
     24, 2, 1, 3, 1, 2, 24);
