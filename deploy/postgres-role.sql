-- Least-privilege Postgres roles for reconcile.
--
--   reconcile_job       what `reconcile run` (including --dry-run, --prune and
--                       --verify-existing), `reconcile verify`, `reconcile plan`
--                       and `reconcile report` need, and nothing more: it reads
--                       the desired rows but cannot change them, appends
--                       outcomes but cannot change or delete them, and owns no
--                       table (no DDL).
--   reconcile_importer  what `reconcile import` (also with --replace) needs:
--                       write desired_snapshot_callbacks, stage lines in a
--                       temporary table.
--   reconcile_retention what `reconcile history prune` needs: read and delete
--                       reconcile_outcomes rows, read reconcile_domain_state
--                       (to keep each domain's latest outcome). It cannot
--                       touch runs, domain states or desired rows, nor add
--                       outcomes.
--
-- All three are group roles (NOLOGIN). Give the job a login either way:
--
--   -- a separate login role that is a member (recommended: rotate it freely)
--   CREATE ROLE reconcile_cron LOGIN PASSWORD '...' IN ROLE reconcile_job;
--   -- or make the role itself log in
--   ALTER ROLE reconcile_job LOGIN PASSWORD '...';
--
-- and point DATABASE_URL at it (postgres://reconcile_cron@db.internal:5432/video).
--
-- Schema migrations are not the job's: run `reconcile migrate` as the owner of
-- the schema, then this file, as that owner (the GRANTs must come from the
-- objects' owner) with a role that may create roles (CREATEROLE) for the
-- first part:
--
--   psql "$OWNER_DATABASE_URL" -v ON_ERROR_STOP=1 -f deploy/postgres-role.sql
--
-- It is idempotent: run it again after every `reconcile migrate` (a new view
-- or table needs its GRANT here; tests in internal/app/role_test.go run the
-- whole job as these roles against the latest schema). It names every object
-- it grants on, so it fails loudly when one is missing.
--
-- reconcile's objects live in the first schema of the migrating role's
-- search_path, `public` below; replace it if you migrate into another schema
-- (and give the job the same search_path: ALTER ROLE reconcile_job SET
-- search_path = <schema>).
--
-- What PUBLIC may do is not changed here. On PostgreSQL 14 and older PUBLIC
-- may CREATE in schema public; revoke that (PostgreSQL 15 does by default):
--   REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- PUBLIC may also create temporary tables in every database by default; the
-- importer is granted TEMPORARY explicitly so that revoking it from PUBLIC
-- does not break imports.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reconcile_job') THEN
        CREATE ROLE reconcile_job NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reconcile_importer') THEN
        CREATE ROLE reconcile_importer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reconcile_retention') THEN
        CREATE ROLE reconcile_retention NOLOGIN;
    END IF;
    -- The database is whichever this file runs in.
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO reconcile_job, reconcile_importer, reconcile_retention',
                   current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO reconcile_importer', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO reconcile_job, reconcile_importer, reconcile_retention;

-- All check the schema version before anything else.
GRANT SELECT ON public.reconcile_schema_version TO reconcile_job, reconcile_importer, reconcile_retention;

-- The functions behind the generated fingerprint column, the status view and
-- the updated_at trigger
-- (EXECUTE is PUBLIC's by default; explicit, in case that was revoked).
GRANT EXECUTE ON FUNCTION
    public.reconcile_fingerprint(text, text, boolean, text, text),
    public.reconcile_fingerprint(text, text, boolean, text, text, text),
    public.reconcile_is_pending(text, text, text, text),
    public.reconcile_is_invalid_unchanged(text, text, text, text),
    public.reconcile_touch_updated_at()
    TO reconcile_job, reconcile_importer;

-- reconcile_job ----------------------------------------------------------------

-- The desired state: read only.
GRANT SELECT ON public.desired_snapshot_callbacks TO reconcile_job;
-- Outcomes are append-only: no UPDATE, no DELETE.
GRANT SELECT, INSERT ON public.reconcile_outcomes TO reconcile_job;
-- Run rows (begin, counters, finish, mark abandoned) and the latest outcome
-- per domain (upserted with each outcome batch).
GRANT SELECT, INSERT, UPDATE ON public.reconcile_runs, public.reconcile_domain_state TO reconcile_job;
-- The run claim (a lease row: take, renew, release; never deleted).
GRANT SELECT, INSERT, UPDATE ON public.reconcile_run_lease TO reconcile_job;
-- The accounts and how to reach them: read only (they hold no secret).
GRANT SELECT ON public.reconcile_accounts TO reconcile_job;
-- One row per (run, account): begun, finished, skipped.
GRANT SELECT, INSERT, UPDATE ON public.reconcile_run_accounts TO reconcile_job;
-- The status view (pending rows, plan) and the report views.
GRANT SELECT ON public.snapshot_callback_status, public.reconcile_run_summary, public.reconcile_failures_by_code,
    public.reconcile_account_status
    TO reconcile_job;
-- reconcile_runs.id and reconcile_outcomes.id are identity columns: INSERT on
-- the table is all they need (no sequence privilege; the tests check it).

-- reconcile_importer -----------------------------------------------------------

-- The upsert reads the rows it compares (SELECT), --replace deletes the rows
-- absent from the file.
GRANT SELECT, INSERT, UPDATE, DELETE ON public.desired_snapshot_callbacks TO reconcile_importer;

-- reconcile_retention ----------------------------------------------------------

-- `reconcile history prune`: deletes old outcome rows (SELECT: its DELETE
-- reads the rows it matches), keeping each domain's latest, which it reads
-- from reconcile_domain_state. Runs (every run's summary) are not its to
-- delete. Run it as a login that is a member, e.g. from a monthly CronJob:
--   CREATE ROLE reconcile_prune LOGIN PASSWORD '...' IN ROLE reconcile_retention;
GRANT SELECT, DELETE ON public.reconcile_outcomes TO reconcile_retention;
GRANT SELECT ON public.reconcile_domain_state TO reconcile_retention;
