-- reconcile schema, version 5: an audit trail that answers questions in one
-- query. See docs/audit.md (the cookbook) and docs/schema.md.
--
--   * every outcome keeps the values it was about: notify_url,
--     notify_req_auth and the RegionId sent (never the auth key: the
--     fingerprint already tells a key change from no change);
--   * desired_snapshot_callbacks.updated_at is kept by a trigger, so a hand
--     edit (psql UPDATE) moves it too;
--   * reconcile_runs.exit_code: what the process exited with;
--   * the views gain the columns support tickets ask for (request id, HTTP
--     status, the desired values, times);
--   * every table, view and column users query has a COMMENT, so `\d+`
--     explains it.
--
-- CREATE OR REPLACE VIEW can only add columns at the end, so the new view
-- columns come after the old ones.

ALTER TABLE reconcile_outcomes
    ADD COLUMN notify_url      text,
    ADD COLUMN notify_req_auth boolean,
    ADD COLUMN region_id       text;

ALTER TABLE reconcile_runs ADD COLUMN exit_code integer;

-- updated_at follows every change of a desired value, whoever makes it. The
-- WHEN clause lists the desired columns (a BEFORE trigger cannot see the
-- generated fingerprint): an UPDATE that changes none of them leaves
-- updated_at as it is, or as the statement set it.
CREATE FUNCTION reconcile_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER desired_snapshot_callbacks_updated_at
    BEFORE UPDATE ON desired_snapshot_callbacks
    FOR EACH ROW
    WHEN ((OLD.domain_name, OLD.notify_url, OLD.notify_req_auth, OLD.notify_auth_key, OLD.region_id)
          IS DISTINCT FROM (NEW.domain_name, NEW.notify_url, NEW.notify_req_auth, NEW.notify_auth_key, NEW.region_id))
    EXECUTE FUNCTION reconcile_touch_updated_at();

-- snapshot_callback_status gains the desired values (no key), when they
-- last changed, and the API's answer to the latest outcome (a primary-key
-- join that queries not using those columns do not pay for: the planner
-- removes an unused LEFT JOIN on a unique key).
CREATE OR REPLACE VIEW snapshot_callback_status AS
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
       o.region_id                               AS sent_region_id
FROM desired_snapshot_callbacks d
LEFT JOIN reconcile_domain_state s USING (domain_name)
LEFT JOIN reconcile_outcomes o ON o.id = s.last_outcome_id;

CREATE OR REPLACE VIEW reconcile_run_summary AS
SELECT r.id                                                        AS run_id,
       r.kind,
       r.status,
       r.started_at,
       r.finished_at,
       r.finished_at - r.started_at                                AS duration,
       extract(epoch FROM r.finished_at - r.started_at)::double precision AS duration_seconds,
       r.applied,
       r.already_exists,
       r.updated,
       r.invalid,
       r.failed,
       r.drifted,
       r.in_sync,
       r.missing,
       r.deleted,
       r.invalid_unchanged,
       r.applied + r.already_exists + r.updated + r.in_sync        AS done,
       r.invalid + r.failed + r.drifted + r.missing                AS not_done,
       r.requests,
       r.throttled,
       CASE WHEN r.finished_at > r.started_at
            THEN r.requests / extract(epoch FROM r.finished_at - r.started_at)::double precision
       END                                                         AS requests_per_second,
       r.rate,
       r.concurrency,
       r.host_name,
       r.program_version,
       r.note,
       r.exit_code
FROM reconcile_runs r;

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
       (array_agg(o.http_status ORDER BY o.domain_name))[1]          AS sample_http_status
FROM reconcile_outcomes o
WHERE o.outcome IN ('failed', 'invalid', 'drifted', 'missing')
GROUP BY o.run_id, o.outcome, o.error_code;

-- Comments: what `\d+` shows. -------------------------------------------------

COMMENT ON TABLE desired_snapshot_callbacks IS
    'The desired state, written by users (or reconcile import): one row per streaming domain. A run sends Add or Update for every row that is not done.';
COMMENT ON COLUMN desired_snapshot_callbacks.domain_name IS 'the main streaming domain (lower-case DNS name; the key)';
COMMENT ON COLUMN desired_snapshot_callbacks.notify_url IS 'the snapshot callback URL (http or https)';
COMMENT ON COLUMN desired_snapshot_callbacks.notify_req_auth IS 'sent as NotifyReqAuth=yes/no: whether callbacks are signed with notify_auth_key';
COMMENT ON COLUMN desired_snapshot_callbacks.notify_auth_key IS 'a SECRET: the callback signing key, required when notify_req_auth; never copied to any other table, log or metric';
COMMENT ON COLUMN desired_snapshot_callbacks.region_id IS 'RegionId sent for the domain; NULL: the run''s --region';
COMMENT ON COLUMN desired_snapshot_callbacks.updated_at IS 'when a desired value (domain, URL, auth flag, key, region) last changed; kept by trigger desired_snapshot_callbacks_updated_at, also on hand edits';
COMMENT ON COLUMN desired_snapshot_callbacks.fingerprint IS 'generated: SHA-256 of all desired values (key included, one-way); an outcome is for the values with this fingerprint';

COMMENT ON TABLE reconcile_runs IS
    'One row per reconcile run (dry runs included) and per reconcile verify, with its counts per outcome.';
COMMENT ON COLUMN reconcile_runs.id IS 'run id (reconcile_outcomes.run_id, reconcile report --run)';
COMMENT ON COLUMN reconcile_runs.kind IS 'run or verify';
COMMENT ON COLUMN reconcile_runs.started_at IS 'when the run started';
COMMENT ON COLUMN reconcile_runs.finished_at IS 'when the run ended; NULL while running (or if the process died: the next run marks it failed/abandoned)';
COMMENT ON COLUMN reconcile_runs.status IS 'running, succeeded (the pass completed: rows may still be failed, see exit_code), failed (stopped by an error, see note), interrupted (SIGTERM/SIGINT), dry_run';
COMMENT ON COLUMN reconcile_runs.applied IS 'rows whose Add succeeded';
COMMENT ON COLUMN reconcile_runs.already_exists IS 'rows whose config was already there with the desired values';
COMMENT ON COLUMN reconcile_runs.updated IS 'rows whose Update succeeded';
COMMENT ON COLUMN reconcile_runs.invalid IS 'rows refused by validation (nothing sent)';
COMMENT ON COLUMN reconcile_runs.failed IS 'rows whose request failed (permanent error, or retries ran out)';
COMMENT ON COLUMN reconcile_runs.drifted IS 'rows whose config differs from the desired values and was left alone (verify, --no-fix-drift)';
COMMENT ON COLUMN reconcile_runs.in_sync IS 'rows a Describe found in sync';
COMMENT ON COLUMN reconcile_runs.missing IS 'rows verify found without a config';
COMMENT ON COLUMN reconcile_runs.deleted IS 'configs --prune deleted (domains no longer desired)';
COMMENT ON COLUMN reconcile_runs.invalid_unchanged IS 'rows still invalid from an earlier run with unchanged values: counted, not re-sent';
COMMENT ON COLUMN reconcile_runs.requests IS 'API requests sent, retries included';
COMMENT ON COLUMN reconcile_runs.throttled IS 'API requests answered with throttling';
COMMENT ON COLUMN reconcile_runs.rate IS 'the configured --rate (requests per second)';
COMMENT ON COLUMN reconcile_runs.concurrency IS 'the configured --concurrency';
COMMENT ON COLUMN reconcile_runs.host_name IS 'host (pod) that ran it';
COMMENT ON COLUMN reconcile_runs.program_version IS 'reconcile version that ran it';
COMMENT ON COLUMN reconcile_runs.note IS 'why a run failed; a dry run''s plan; a refused prune';
COMMENT ON COLUMN reconcile_runs.exit_code IS 'the process exit code: 0 every desired row done, 1 rows not done, 2 bad configuration/credentials/schema, 4 interrupted, 5 a dry run found pending rows, 6 infrastructure failure (database, run claim, credentials provider); NULL while running, for runs before schema 5, and when the process died';

COMMENT ON TABLE reconcile_outcomes IS
    'Append-only audit trail: one row per (run, domain) that the run attempted, with the API''s answer and the values it was about. Never holds notify_auth_key.';
COMMENT ON COLUMN reconcile_outcomes.id IS 'increases with time: ORDER BY id is the order outcomes were recorded';
COMMENT ON COLUMN reconcile_outcomes.run_id IS 'the run (reconcile_runs.id)';
COMMENT ON COLUMN reconcile_outcomes.domain_name IS 'the domain';
COMMENT ON COLUMN reconcile_outcomes.outcome IS 'applied, already_exists, updated, in_sync (done); invalid, failed, drifted, missing (not done); deleted (pruned)';
COMMENT ON COLUMN reconcile_outcomes.error_code IS 'the API''s error code (Invalid.<field> for invalid rows); always set for failed';
COMMENT ON COLUMN reconcile_outcomes.error_message IS 'the API''s error message (scrubbed of secrets); for drifted: the fields that differ';
COMMENT ON COLUMN reconcile_outcomes.http_status IS 'HTTP status of the last answer; NULL when no answer came (or nothing was sent)';
COMMENT ON COLUMN reconcile_outcomes.request_id IS 'the API''s RequestId of the last answer: quote it in support tickets';
COMMENT ON COLUMN reconcile_outcomes.attempts IS 'requests sent for the domain in this run, retries included';
COMMENT ON COLUMN reconcile_outcomes.fingerprint IS 'fingerprint of the desired values the outcome is for (a change with equal notify_url/notify_req_auth/region_id means the key changed)';
COMMENT ON COLUMN reconcile_outcomes.finished_at IS 'when the outcome was known';
COMMENT ON COLUMN reconcile_outcomes.possibly_applied IS 'the last write got an answer that proves nothing (timeout, 5xx, reset): its values may be in the cloud';
COMMENT ON COLUMN reconcile_outcomes.notify_url IS 'the NotifyUrl sent (the row''s for invalid: nothing was sent); NULL for deleted and for outcomes before schema 5';
COMMENT ON COLUMN reconcile_outcomes.notify_req_auth IS 'the NotifyReqAuth sent (the key itself is never stored); NULL like notify_url';
COMMENT ON COLUMN reconcile_outcomes.region_id IS 'the RegionId sent (the row''s, else the run''s --region); NULL for outcomes before schema 5';

COMMENT ON TABLE reconcile_domain_state IS
    'Internal, kept by the job: the latest outcome per domain and what the job knows of the cloud. Query snapshot_callback_status instead.';
COMMENT ON COLUMN reconcile_domain_state.domain_name IS 'the domain (also domains no longer desired)';
COMMENT ON COLUMN reconcile_domain_state.last_outcome_id IS 'reconcile_outcomes.id of the latest outcome; NULL when a write was marked but got no outcome yet';
COMMENT ON COLUMN reconcile_domain_state.last_run_id IS 'run of the latest outcome';
COMMENT ON COLUMN reconcile_domain_state.last_outcome IS 'the latest outcome';
COMMENT ON COLUMN reconcile_domain_state.last_fingerprint IS 'fingerprint of the latest outcome';
COMMENT ON COLUMN reconcile_domain_state.last_error_code IS 'error code of the latest outcome';
COMMENT ON COLUMN reconcile_domain_state.last_error_message IS 'error message of the latest outcome';
COMMENT ON COLUMN reconcile_domain_state.last_finished_at IS 'when the latest outcome was known';
COMMENT ON COLUMN reconcile_domain_state.done_fingerprint IS 'fingerprint the cloud is known to hold (latest done outcome); NULL when unknown';
COMMENT ON COLUMN reconcile_domain_state.remote_exists IS 'whether, as far as the job knows, the cloud holds a config for the domain (pending rows are then sent as Update)';

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
COMMENT ON COLUMN snapshot_callback_status.region_id IS 'desired RegionId (NULL: the run''s --region)';
COMMENT ON COLUMN snapshot_callback_status.updated_at IS 'when a desired value last changed';
COMMENT ON COLUMN snapshot_callback_status.request_id IS 'the API''s RequestId of the latest outcome: quote it in support tickets';
COMMENT ON COLUMN snapshot_callback_status.http_status IS 'HTTP status of the latest outcome''s last answer';
COMMENT ON COLUMN snapshot_callback_status.attempts IS 'requests the latest outcome cost';
COMMENT ON COLUMN snapshot_callback_status.sent_region_id IS 'RegionId the latest outcome was sent to';

COMMENT ON VIEW reconcile_run_summary IS
    'One row per run (dry and verify runs included): duration, counts, done/not-done totals, request rate achieved, exit code.';
COMMENT ON COLUMN reconcile_run_summary.run_id IS 'reconcile_runs.id';
COMMENT ON COLUMN reconcile_run_summary.kind IS 'run or verify';
COMMENT ON COLUMN reconcile_run_summary.status IS 'running, succeeded (the pass completed), failed, interrupted, dry_run';
COMMENT ON COLUMN reconcile_run_summary.started_at IS 'when the run started';
COMMENT ON COLUMN reconcile_run_summary.finished_at IS 'when the run ended (NULL while running)';
COMMENT ON COLUMN reconcile_run_summary.duration IS 'finished_at - started_at (NULL while running)';
COMMENT ON COLUMN reconcile_run_summary.duration_seconds IS 'duration in seconds';
COMMENT ON COLUMN reconcile_run_summary.applied IS 'rows applied';
COMMENT ON COLUMN reconcile_run_summary.already_exists IS 'rows found already configured';
COMMENT ON COLUMN reconcile_run_summary.updated IS 'rows updated';
COMMENT ON COLUMN reconcile_run_summary.invalid IS 'rows refused by validation';
COMMENT ON COLUMN reconcile_run_summary.failed IS 'rows failed';
COMMENT ON COLUMN reconcile_run_summary.drifted IS 'rows found drifted';
COMMENT ON COLUMN reconcile_run_summary.in_sync IS 'rows found in sync';
COMMENT ON COLUMN reconcile_run_summary.missing IS 'rows found missing';
COMMENT ON COLUMN reconcile_run_summary.deleted IS 'configs pruned';
COMMENT ON COLUMN reconcile_run_summary.invalid_unchanged IS 'rows still invalid from an earlier run (counted, not re-sent)';
COMMENT ON COLUMN reconcile_run_summary.done IS 'applied + already_exists + updated + in_sync';
COMMENT ON COLUMN reconcile_run_summary.not_done IS 'invalid + failed + drifted + missing';
COMMENT ON COLUMN reconcile_run_summary.requests IS 'API requests, retries included';
COMMENT ON COLUMN reconcile_run_summary.throttled IS 'throttled answers';
COMMENT ON COLUMN reconcile_run_summary.requests_per_second IS 'request rate achieved over the run';
COMMENT ON COLUMN reconcile_run_summary.rate IS 'the configured --rate';
COMMENT ON COLUMN reconcile_run_summary.concurrency IS 'the configured --concurrency';
COMMENT ON COLUMN reconcile_run_summary.host_name IS 'host (pod) that ran it';
COMMENT ON COLUMN reconcile_run_summary.program_version IS 'reconcile version';
COMMENT ON COLUMN reconcile_run_summary.note IS 'why it failed; a dry run''s plan; a refused prune';
COMMENT ON COLUMN reconcile_run_summary.exit_code IS 'the process exit code (0: every desired row done); NULL while running or when the process died';

COMMENT ON VIEW reconcile_failures_by_code IS
    'Per run, the outcomes that left rows not done, grouped by outcome and error code. Filter on run_id (indexed).';
COMMENT ON COLUMN reconcile_failures_by_code.run_id IS 'the run';
COMMENT ON COLUMN reconcile_failures_by_code.outcome IS 'failed, invalid, drifted or missing';
COMMENT ON COLUMN reconcile_failures_by_code.error_code IS 'the error code (NULL when none was recorded)';
COMMENT ON COLUMN reconcile_failures_by_code.count IS 'rows with this outcome and code';
COMMENT ON COLUMN reconcile_failures_by_code.sample_domains IS 'up to 5 of them, the first by name';
COMMENT ON COLUMN reconcile_failures_by_code.sample_message IS 'the error message of the first sample';
COMMENT ON COLUMN reconcile_failures_by_code.first_finished_at IS 'when the first of them was recorded';
COMMENT ON COLUMN reconcile_failures_by_code.last_finished_at IS 'when the last of them was recorded';
COMMENT ON COLUMN reconcile_failures_by_code.sample_request_id IS 'the API''s RequestId of the first sample';
COMMENT ON COLUMN reconcile_failures_by_code.sample_http_status IS 'HTTP status of the first sample';
