-- reconcile schema, version 2: drift detection (verify, --verify-existing)
-- and pruning (--prune). See docs/commands.md ("Drift", "Prune").

-- New outcomes:
--   drifted  a config exists but differs from the desired values (not done)
--   in_sync  `reconcile verify` found the desired config (done)
--   missing  `reconcile verify` found no config (not done: the next run adds it)
--   deleted  --prune deleted the config of a domain no longer desired
ALTER TABLE reconcile_outcomes DROP CONSTRAINT reconcile_outcomes_outcome_check;
ALTER TABLE reconcile_outcomes ADD CONSTRAINT reconcile_outcomes_outcome_check
    CHECK (outcome IN ('applied', 'already_exists', 'updated', 'invalid', 'failed',
                       'drifted', 'in_sync', 'missing', 'deleted'));

ALTER TABLE reconcile_runs
    ADD COLUMN kind     text   NOT NULL DEFAULT 'run' CHECK (kind IN ('run', 'verify')),
    ADD COLUMN drifted  bigint NOT NULL DEFAULT 0,
    ADD COLUMN in_sync  bigint NOT NULL DEFAULT 0,
    ADD COLUMN missing  bigint NOT NULL DEFAULT 0,
    ADD COLUMN deleted  bigint NOT NULL DEFAULT 0;

-- remote_exists: whether, as far as the job knows, the cloud holds a config
-- for the domain (true after applied, already_exists, updated, in_sync,
-- drifted; false after missing, deleted). A pending row with remote_exists is
-- sent as Update, otherwise as Add. done_fingerprint is cleared by drifted,
-- missing and deleted, so such rows are pending again.
ALTER TABLE reconcile_domain_state ADD COLUMN remote_exists boolean;
UPDATE reconcile_domain_state SET remote_exists = (done_fingerprint IS NOT NULL);

-- Prune candidates: domains the job has configured (remote_exists) that are
-- no longer desired.
CREATE INDEX reconcile_domain_state_remote_idx ON reconcile_domain_state (domain_name) WHERE remote_exists;

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
       coalesce(s.remote_exists, false)          AS remote_exists
FROM desired_snapshot_callbacks d
LEFT JOIN reconcile_domain_state s USING (domain_name);
