-- reconcile schema, version 4: "done is true". A row is recorded done only
-- when the job knows that the cloud holds its current values. See
-- docs/guarantees.md ("What done guarantees").
--
-- Before a run sends Add or Update for a page of rows it records, in one
-- statement per page, that each row's values may be about to reach the
-- cloud: the fingerprint joins reconcile_domain_state.unconfirmed and the
-- domain's done_fingerprint is cleared (the cloud's config is no longer
-- known). Only an answer that proves what the cloud holds (an OK answer, a
-- Describe, a Delete) empties unconfirmed again. A later ConfigAlreadyExists
-- is trusted as done only when unconfirmed holds no other values than the
-- row's current ones; otherwise the job describes the config and compares.
-- A row whose write was lost stays pending (done_fingerprint is NULL), so
-- reverting it to its earlier values cannot make it look done.

-- A domain may now have a state row before its first outcome (its writes
-- were marked, then the process died): the last_* columns are NULL then.
ALTER TABLE reconcile_domain_state
    ALTER COLUMN last_outcome_id  DROP NOT NULL,
    ALTER COLUMN last_run_id      DROP NOT NULL,
    ALTER COLUMN last_outcome     DROP NOT NULL,
    ALTER COLUMN last_fingerprint DROP NOT NULL,
    ALTER COLUMN last_finished_at DROP NOT NULL,
    ADD COLUMN unconfirmed text[] NOT NULL DEFAULT '{}';

COMMENT ON COLUMN reconcile_domain_state.unconfirmed IS
    'fingerprints of values the job sent (or was about to send) whose answer proved nothing; emptied by an answer that proves what the cloud holds';

-- possibly_applied: the last write sent for the row got an answer that
-- proves nothing (timeout, 5xx or reset after the request was written), so
-- its values may be in the cloud although the outcome is failed.
ALTER TABLE reconcile_outcomes ADD COLUMN possibly_applied boolean NOT NULL DEFAULT false;

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
       coalesce(cardinality(s.unconfirmed) > 0, false) AS unconfirmed
FROM desired_snapshot_callbacks d
LEFT JOIN reconcile_domain_state s USING (domain_name);
