-- reconcile schema, version 7: many Alibaba Cloud accounts in one desired
-- state. See docs/accounts.md and docs/schema.md.
--
--   * reconcile_accounts says how to reach each named account: which
--     credentials (a RAM role to assume from the job's own identity, a named
--     profile of the shared credentials file, or the job's own chain) and its
--     rate, endpoint and region defaults. It never holds a secret.
--   * desired_snapshot_callbacks.account names the account of a row; NULL is
--     the default account (the job's own credentials and flags), so every
--     table, CSV and command written before version 7 works unchanged.
--   * the account is one of the desired values: the fingerprint covers it
--     (only when set, so the fingerprints of default-account rows do not
--     change), and moving a domain to another account makes it pending.
--   * outcomes and the per-domain state record the account they were for;
--     --prune deletes a config in the account that holds it.
--   * reconcile_run_accounts: one row per (run, account) the run took up,
--     with its status and why it stopped; reconcile_runs.lease_holder ties a
--     running run to its claims, so that one shard never marks another
--     shard's live run as abandoned.

CREATE TABLE reconcile_accounts (
    name         text PRIMARY KEY
                 CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$' AND name <> 'default'),
    credentials  text NOT NULL CHECK (credentials IN ('ram_role_arn', 'profile', 'default')),
    role_arn     text CHECK (role_arn ~ '^acs:ram::[0-9]+:role/.+$'),
    external_id  text,
    session_name text CHECK (session_name ~ '^[A-Za-z0-9._@-]{2,64}$'),
    profile      text CHECK (profile <> ''),
    rate         double precision CHECK (rate > 0 AND rate <= 1000),
    endpoint     text CHECK (endpoint <> ''),
    region_id    text CHECK (region_id <> ''),
    disabled     boolean NOT NULL DEFAULT false,
    note         text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((credentials = 'ram_role_arn') = (role_arn IS NOT NULL)),
    CHECK ((credentials = 'profile') = (profile IS NOT NULL)),
    CHECK (credentials = 'ram_role_arn' OR (external_id IS NULL AND session_name IS NULL))
);

CREATE TRIGGER reconcile_accounts_updated_at
    BEFORE UPDATE ON reconcile_accounts
    FOR EACH ROW EXECUTE FUNCTION reconcile_touch_updated_at();

-- The fingerprint gains the account. concat_ws skips NULLs, so a row of the
-- default account (account NULL) keeps the fingerprint version 1 gave it.
CREATE FUNCTION reconcile_fingerprint(domain_name text, notify_url text, notify_req_auth boolean,
                                      notify_auth_key text, region_id text, account text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN encode(sha256(convert_to(concat_ws(E'\x1f', domain_name, notify_url,
        CASE WHEN notify_req_auth THEN 'yes' ELSE 'no' END,
        coalesce(notify_auth_key, ''), coalesce(region_id, ''), account), 'UTF8')), 'hex');

-- A generated column's expression cannot be altered before PostgreSQL 17:
-- drop the view that reads it, then the column, and add both back.
DROP VIEW snapshot_callback_status;
ALTER TABLE desired_snapshot_callbacks DROP COLUMN fingerprint;
ALTER TABLE desired_snapshot_callbacks
    ADD COLUMN account text CHECK (account <> ''),
    ADD COLUMN fingerprint text NOT NULL GENERATED ALWAYS AS (
        reconcile_fingerprint(domain_name, notify_url, notify_req_auth, notify_auth_key, region_id, account)) STORED;
CREATE INDEX desired_snapshot_callbacks_account_idx ON desired_snapshot_callbacks (account, domain_name);

DROP TRIGGER desired_snapshot_callbacks_updated_at ON desired_snapshot_callbacks;
CREATE TRIGGER desired_snapshot_callbacks_updated_at
    BEFORE UPDATE ON desired_snapshot_callbacks
    FOR EACH ROW
    WHEN ((OLD.domain_name, OLD.notify_url, OLD.notify_req_auth, OLD.notify_auth_key, OLD.region_id, OLD.account)
          IS DISTINCT FROM (NEW.domain_name, NEW.notify_url, NEW.notify_req_auth, NEW.notify_auth_key, NEW.region_id,
                            NEW.account))
    EXECUTE FUNCTION reconcile_touch_updated_at();

ALTER TABLE reconcile_outcomes ADD COLUMN account text;
ALTER TABLE reconcile_domain_state ADD COLUMN account text;
ALTER TABLE reconcile_runs ADD COLUMN lease_holder text;

CREATE TABLE reconcile_run_accounts (
    run_id      bigint NOT NULL REFERENCES reconcile_runs (id) ON DELETE CASCADE,
    account     text CHECK (account <> ''),  -- NULL: the default account
    status      text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'skipped')),
    reason      text,
    error_code  text,
    pending     bigint NOT NULL DEFAULT 0,   -- rows pending when the account started
    done        bigint NOT NULL DEFAULT 0,
    not_done    bigint NOT NULL DEFAULT 0,
    requests    bigint NOT NULL DEFAULT 0,
    throttled   bigint NOT NULL DEFAULT 0,
    rate        double precision,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

-- One row per (run, account), the default account included. Not UNIQUE NULLS
-- NOT DISTINCT: that needs PostgreSQL 15, and the schema supports 14. Writers
-- name this index's expression in ON CONFLICT.
CREATE UNIQUE INDEX reconcile_run_accounts_key ON reconcile_run_accounts (run_id, coalesce(account, ''));

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
                                                 AS invalid_unchanged,
       coalesce(s.remote_exists, false)          AS remote_exists,
       coalesce(cardinality(s.unconfirmed) > 0, false) AS unconfirmed,
       d.notify_url,
       d.notify_req_auth,
       d.region_id,
       d.updated_at,
       o.request_id,
       o.http_status,
       o.attempts,
       o.region_id                               AS sent_region_id,
       d.account
FROM desired_snapshot_callbacks d
LEFT JOIN reconcile_domain_state s USING (domain_name)
LEFT JOIN reconcile_outcomes o ON o.id = s.last_outcome_id;

CREATE OR REPLACE VIEW reconcile_failures_by_code AS
SELECT o.run_id,
       o.outcome,
       o.error_code,
       count(*)                                                       AS count,
       (array_agg(o.domain_name ORDER BY o.domain_name))[1:5]        AS sample_domains,
       (array_agg(o.error_message ORDER BY o.domain_name))[1]        AS sample_message,
       min(o.finished_at)                                             AS first_finished_at,
       max(o.finished_at)                                             AS last_finished_at,
       (array_agg(o.request_id ORDER BY o.domain_name))[1]           AS sample_request_id,
       (array_agg(o.http_status ORDER BY o.domain_name))[1]          AS sample_http_status,
       o.account
FROM reconcile_outcomes o
WHERE o.outcome IN ('failed', 'invalid', 'drifted', 'missing')
GROUP BY o.run_id, o.outcome, o.error_code, o.account;

-- reconcile_account_status: one row per account that has desired rows (the
-- default account as NULL), with the counts an operator asks for first.
CREATE VIEW reconcile_account_status AS
SELECT s.account,
       a.credentials,
       coalesce(a.disabled, false)                       AS disabled,
       (s.account IS NOT NULL AND a.name IS NULL)        AS unknown,
       count(*)                                          AS desired,
       count(*) FILTER (WHERE s.done)                    AS done,
       count(*) FILTER (WHERE s.pending)                 AS pending,
       count(*) FILTER (WHERE s.invalid_unchanged)       AS invalid_unchanged,
       count(*) FILTER (WHERE NOT s.done)                AS not_done,
       max(s.finished_at)                                AS last_finished_at
FROM snapshot_callback_status s
LEFT JOIN reconcile_accounts a ON a.name = s.account
GROUP BY s.account, a.name, a.credentials, a.disabled;

-- Comments: what `\d+` shows. -------------------------------------------------

COMMENT ON TABLE reconcile_accounts IS
    'The named Alibaba Cloud accounts desired rows may name (desired_snapshot_callbacks.account), and how the job reaches each. Holds no secret.';
COMMENT ON COLUMN reconcile_accounts.name IS 'the account''s name in the desired state (lower-case; ''default'' is reserved for rows without an account)';
COMMENT ON COLUMN reconcile_accounts.credentials IS 'ram_role_arn: assume role_arn from the job''s own credentials; profile: a profile of the shared credentials file; default: the job''s own credentials chain';
COMMENT ON COLUMN reconcile_accounts.role_arn IS 'the RAM role to assume (acs:ram::<account id>:role/<name>); its trust policy must allow the job''s identity';
COMMENT ON COLUMN reconcile_accounts.external_id IS 'ExternalId sent with AssumeRole (an identifier the trust policy requires, not a secret)';
COMMENT ON COLUMN reconcile_accounts.session_name IS 'RoleSessionName of the assumed role (default reconcile-<account>); shows in ActionTrail';
COMMENT ON COLUMN reconcile_accounts.profile IS 'profile name in ~/.alibabacloud/credentials (ALIBABA_CLOUD_CREDENTIALS_FILE)';
COMMENT ON COLUMN reconcile_accounts.rate IS 'requests per second for this account (NULL: the run''s --rate); the API allows 30 per account';
COMMENT ON COLUMN reconcile_accounts.endpoint IS 'API endpoint for this account (NULL: the run''s --endpoint)';
COMMENT ON COLUMN reconcile_accounts.region_id IS 'RegionId for this account''s rows without one (NULL: the run''s --region)';
COMMENT ON COLUMN reconcile_accounts.disabled IS 'true: runs skip the account; its rows stay pending';
COMMENT ON COLUMN reconcile_accounts.note IS 'free text for operators';
COMMENT ON COLUMN reconcile_accounts.updated_at IS 'when the row last changed';

COMMENT ON COLUMN desired_snapshot_callbacks.account IS 'the account that holds the domain (reconcile_accounts.name); NULL: the default account (the job''s own credentials)';
COMMENT ON COLUMN desired_snapshot_callbacks.fingerprint IS 'generated: SHA-256 of all desired values (key and account included, one-way); an outcome is for the values with this fingerprint';
COMMENT ON COLUMN reconcile_outcomes.account IS 'the account the request went to; NULL: the default account';
COMMENT ON COLUMN reconcile_domain_state.account IS 'the account of the latest outcome (where --prune deletes); NULL: the default account';
COMMENT ON COLUMN reconcile_runs.lease_holder IS 'the token of the run''s claims in reconcile_run_lease: a running run whose claims all expired was abandoned';

COMMENT ON TABLE reconcile_run_accounts IS
    'One row per (run, account) the run took up: the account''s status, why it stopped, and its counts.';
COMMENT ON COLUMN reconcile_run_accounts.run_id IS 'the run (reconcile_runs.id)';
COMMENT ON COLUMN reconcile_run_accounts.account IS 'the account; NULL: the default account';
COMMENT ON COLUMN reconcile_run_accounts.status IS 'running, succeeded (its pass completed), failed (see reason: credentials refused or unavailable, unknown account), interrupted, skipped (another run held it, or disabled)';
COMMENT ON COLUMN reconcile_run_accounts.reason IS 'why the account failed or was skipped; its rows stay pending';
COMMENT ON COLUMN reconcile_run_accounts.error_code IS 'the API''s error code that stopped the account, if any';
COMMENT ON COLUMN reconcile_run_accounts.pending IS 'rows of the account pending when it started';
COMMENT ON COLUMN reconcile_run_accounts.done IS 'rows of the account that ended done in the run';
COMMENT ON COLUMN reconcile_run_accounts.not_done IS 'rows of the account that ended not done (invalid, failed, drifted, missing)';
COMMENT ON COLUMN reconcile_run_accounts.requests IS 'API requests sent to the account';
COMMENT ON COLUMN reconcile_run_accounts.throttled IS 'throttled answers from the account';
COMMENT ON COLUMN reconcile_run_accounts.rate IS 'the rate the account was run at (requests per second)';
COMMENT ON COLUMN reconcile_run_accounts.started_at IS 'when the run took the account up';
COMMENT ON COLUMN reconcile_run_accounts.finished_at IS 'when the account''s pass ended';

COMMENT ON VIEW snapshot_callback_status IS
    'One row per desired domain: its desired values (no key), latest outcome with the API''s answer, and whether the next run takes it up (pending).';
COMMENT ON COLUMN snapshot_callback_status.domain_name IS 'the desired domain';
COMMENT ON COLUMN snapshot_callback_status.fingerprint IS 'fingerprint of the current desired values';
COMMENT ON COLUMN snapshot_callback_status.outcome IS 'latest outcome (NULL: never attempted); may be for older values, see done';
COMMENT ON COLUMN snapshot_callback_status.run_id IS 'run of the latest outcome';
COMMENT ON COLUMN snapshot_callback_status.finished_at IS 'when the latest outcome was known';
COMMENT ON COLUMN snapshot_callback_status.error_code IS 'error code of the latest outcome';
COMMENT ON COLUMN snapshot_callback_status.error_message IS 'error message of the latest outcome';
COMMENT ON COLUMN snapshot_callback_status.ever_done IS 'the cloud is known to hold some values of the job for the domain';
COMMENT ON COLUMN snapshot_callback_status.done IS 'the cloud is known to hold the current desired values';
COMMENT ON COLUMN snapshot_callback_status.pending IS 'the next run calls the API for this domain';
COMMENT ON COLUMN snapshot_callback_status.invalid_unchanged IS 'invalid and unchanged since: the next run counts it and sends nothing';
COMMENT ON COLUMN snapshot_callback_status.remote_exists IS 'as far as the job knows, the cloud holds a config (a pending row is sent as Update)';
COMMENT ON COLUMN snapshot_callback_status.unconfirmed IS 'the job may have written values for the domain that no answer has proved since';
COMMENT ON COLUMN snapshot_callback_status.notify_url IS 'desired NotifyUrl';
COMMENT ON COLUMN snapshot_callback_status.notify_req_auth IS 'desired NotifyReqAuth (the key is never shown)';
COMMENT ON COLUMN snapshot_callback_status.region_id IS 'desired RegionId (NULL: the account''s region_id, else the run''s --region)';
COMMENT ON COLUMN snapshot_callback_status.updated_at IS 'when a desired value last changed';
COMMENT ON COLUMN snapshot_callback_status.request_id IS 'the API''s RequestId of the latest outcome: quote it in support tickets';
COMMENT ON COLUMN snapshot_callback_status.http_status IS 'HTTP status of the latest outcome''s last answer';
COMMENT ON COLUMN snapshot_callback_status.attempts IS 'requests the latest outcome cost';
COMMENT ON COLUMN snapshot_callback_status.sent_region_id IS 'RegionId the latest outcome was sent to';
COMMENT ON COLUMN snapshot_callback_status.account IS 'desired account (NULL: the default account)';
COMMENT ON COLUMN reconcile_failures_by_code.account IS 'the account (NULL: the default account)';

COMMENT ON VIEW reconcile_account_status IS
    'One row per account with desired rows (NULL: the default account): how many are done, pending, not done; unknown: no reconcile_accounts row names it (its rows stay pending).';
COMMENT ON COLUMN reconcile_account_status.account IS 'the account (NULL: the default account)';
COMMENT ON COLUMN reconcile_account_status.credentials IS 'reconcile_accounts.credentials (NULL: the default account, or an unknown one)';
COMMENT ON COLUMN reconcile_account_status.disabled IS 'runs skip the account; its rows stay pending';
COMMENT ON COLUMN reconcile_account_status.unknown IS 'no reconcile_accounts row names the account: runs fail it and its rows stay pending';
COMMENT ON COLUMN reconcile_account_status.desired IS 'desired rows of the account';
COMMENT ON COLUMN reconcile_account_status.done IS 'rows whose current values the cloud is known to hold';
COMMENT ON COLUMN reconcile_account_status.pending IS 'rows the next run takes up';
COMMENT ON COLUMN reconcile_account_status.invalid_unchanged IS 'rows invalid with unchanged values: counted, not sent';
COMMENT ON COLUMN reconcile_account_status.not_done IS 'rows not done (desired - done: the pending and the invalid_unchanged ones); 0 when the account is fully done';
COMMENT ON COLUMN reconcile_account_status.last_finished_at IS 'when the latest outcome of one of its rows was recorded';

COMMENT ON TABLE reconcile_run_lease IS
    'the run claims: a run works on an account only while it holds that account''s row (name reconcile.run for the default account, reconcile.run/<account> for a named one) and expires_at is in the future (database clock)';
COMMENT ON COLUMN reconcile_runs.exit_code IS 'the process exit code: 0 every desired row done, 1 rows not done, 2 bad configuration/credentials/schema, 4 interrupted, 5 a dry run found pending rows, 6 infrastructure failure (database, run claim, credentials provider), 7 some accounts failed (see reconcile_run_accounts); NULL while running, for runs before schema 5, and when the process died';
