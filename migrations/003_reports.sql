-- reconcile schema, version 3: views for audits and `reconcile report`.
-- See docs/audit.md and docs/schema.md ("Views"). Views only (and one
-- small partial index): nothing here changes what a run reads or writes.

-- reconcile_run_summary: one row per run (dry runs and verify runs
-- included) with its duration, its counts per outcome, the done / not-done
-- totals and the request rate it achieved. `duration` is NULL while a run is
-- still running.
CREATE VIEW reconcile_run_summary AS
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
       r.note
FROM reconcile_runs r;

-- The outcomes that leave a row not done, indexed by run: the failures view
-- below (and "what failed in run N") reads only these rows instead of every
-- outcome of the run. Partial, so a run's successful outcomes cost nothing
-- extra to write.
CREATE INDEX reconcile_outcomes_not_done_idx ON reconcile_outcomes (run_id, outcome, error_code)
    WHERE outcome IN ('failed', 'invalid', 'drifted', 'missing');

-- reconcile_failures_by_code: per run, the outcomes that left rows not done
-- (failed, invalid, drifted, missing), grouped by outcome and error code,
-- with their count, up to 5 sample domains (the first by name) and the
-- error message of the first of them. error_code is NULL for rows recorded
-- without one. Filter on run_id: the condition reaches the partial index.
CREATE VIEW reconcile_failures_by_code AS
SELECT o.run_id,
       o.outcome,
       o.error_code,
       count(*)                                                       AS count,
       (array_agg(o.domain_name ORDER BY o.domain_name))[1:5]        AS sample_domains,
       (array_agg(o.error_message ORDER BY o.domain_name))[1]        AS sample_message
FROM reconcile_outcomes o
WHERE o.outcome IN ('failed', 'invalid', 'drifted', 'missing')
GROUP BY o.run_id, o.outcome, o.error_code;
