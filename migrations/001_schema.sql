-- reconcile schema, version 1. See docs/schema.md.

-- reconcile_fingerprint is the one definition of "the desired values" of a row.
-- The generated column below, the pending query and every outcome use it.
-- It hashes the auth key together with the other fields; the hash is
-- one-way, so no part of the key is stored.
CREATE FUNCTION reconcile_fingerprint(domain_name text, notify_url text, notify_req_auth boolean,
                                      notify_auth_key text, region_id text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN encode(sha256(convert_to(concat_ws(E'\x1f', domain_name, notify_url,
        CASE WHEN notify_req_auth THEN 'yes' ELSE 'no' END,
        coalesce(notify_auth_key, ''), coalesce(region_id, '')), 'UTF8')), 'hex');

CREATE TABLE desired_snapshot_callbacks (
    domain_name     text PRIMARY KEY,
    notify_url      text NOT NULL,
    notify_req_auth boolean NOT NULL DEFAULT false,
    notify_auth_key text,
    region_id       text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    fingerprint     text NOT NULL GENERATED ALWAYS AS (
        reconcile_fingerprint(domain_name, notify_url, notify_req_auth, notify_auth_key, region_id)) STORED
);

CREATE TABLE reconcile_runs (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at           timestamptz NOT NULL DEFAULT now(),
    finished_at          timestamptz,
    status               text NOT NULL DEFAULT 'running'
                         CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'dry_run')),
    applied              bigint NOT NULL DEFAULT 0,
    already_exists       bigint NOT NULL DEFAULT 0,
    updated              bigint NOT NULL DEFAULT 0,
    invalid              bigint NOT NULL DEFAULT 0,
    failed               bigint NOT NULL DEFAULT 0,
    -- rows that were invalid before with unchanged values: counted, not re-sent
    invalid_unchanged    bigint NOT NULL DEFAULT 0,
    requests             bigint NOT NULL DEFAULT 0,
    throttled            bigint NOT NULL DEFAULT 0,
    rate                 double precision NOT NULL,
    concurrency          integer NOT NULL,
    host_name            text NOT NULL,
    program_version      text NOT NULL,
    note                 text
);

CREATE TABLE reconcile_outcomes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id        bigint NOT NULL REFERENCES reconcile_runs (id),
    domain_name   text NOT NULL,
    outcome       text NOT NULL
                  CHECK (outcome IN ('applied', 'already_exists', 'updated', 'invalid', 'failed')),
    error_code    text,
    error_message text,
    http_status   integer,
    request_id    text,
    attempts      integer NOT NULL DEFAULT 0,
    fingerprint   text NOT NULL,
    finished_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, domain_name)
);
CREATE INDEX reconcile_outcomes_domain_idx ON reconcile_outcomes (domain_name, id DESC);

-- reconcile_domain_state is the latest outcome per domain, kept in the same
-- transaction as the outcome rows, so that the pending query is an index
-- join rather than a scan of the whole outcome history.
CREATE TABLE reconcile_domain_state (
    domain_name        text PRIMARY KEY,
    last_outcome_id    bigint NOT NULL,
    last_run_id        bigint NOT NULL,
    last_outcome       text NOT NULL,
    last_fingerprint   text NOT NULL,
    last_error_code    text,
    last_error_message text,
    last_finished_at   timestamptz NOT NULL,
    -- fingerprint of the latest done outcome (applied, already_exists, updated)
    done_fingerprint   text
);

-- reconcile_is_pending is the one definition of "pending": true when the
-- next run would call the API for the row. A row is done when its latest done
-- outcome (applied, already_exists, updated) has the row's current
-- fingerprint; a row whose latest outcome is invalid for its current
-- fingerprint is not sent again until it is edited. The view below and the
-- run's pending query (internal/db) both use this function, so they cannot
-- disagree; it is a simple SQL expression, so the planner inlines it.
CREATE FUNCTION reconcile_is_pending(fingerprint text, last_outcome text, last_fingerprint text,
                                     done_fingerprint text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN done_fingerprint IS DISTINCT FROM fingerprint
       AND (last_outcome IS DISTINCT FROM 'invalid' OR last_fingerprint IS DISTINCT FROM fingerprint);

-- reconcile_is_invalid_unchanged: not done, and the latest outcome is invalid
-- for the row's current fingerprint: a run counts such a row and sends nothing.
CREATE FUNCTION reconcile_is_invalid_unchanged(fingerprint text, last_outcome text, last_fingerprint text,
                                               done_fingerprint text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN done_fingerprint IS DISTINCT FROM fingerprint
       AND last_outcome IS NOT DISTINCT FROM 'invalid' AND last_fingerprint IS NOT DISTINCT FROM fingerprint;

-- snapshot_callback_status: one row per desired domain with its latest
-- outcome. `pending` is the contract's definition (see reconcile_is_pending).
CREATE VIEW snapshot_callback_status AS
SELECT d.domain_name,
       d.fingerprint,
       s.last_outcome                            AS outcome,
       s.last_run_id                             AS run_id,
       s.last_finished_at                        AS finished_at,
       s.last_error_code                         AS error_code,
       s.last_error_message                      AS error_message,
       (s.done_fingerprint IS NOT NULL)          AS ever_done,
       (s.done_fingerprint IS NOT DISTINCT FROM d.fingerprint) AS done,
       reconcile_is_pending(d.fingerprint, s.last_outcome, s.last_fingerprint, s.done_fingerprint) AS pending,
       reconcile_is_invalid_unchanged(d.fingerprint, s.last_outcome, s.last_fingerprint, s.done_fingerprint)
                                                 AS invalid_unchanged
FROM desired_snapshot_callbacks d
LEFT JOIN reconcile_domain_state s USING (domain_name);
