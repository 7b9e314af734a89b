-- reconcile schema, version 6: the run lock is a lease (a claim row with an
-- expiry), not a session-level advisory lock. See docs/guarantees.md
-- ("Two runs never work at once").
--
-- A session advisory lock does not survive a connection pooler in
-- transaction mode (PgBouncer hands each transaction to any server
-- connection), and it outlives a partitioned client for as long as the
-- server keeps its session. A row does neither: it says who holds the claim
-- and until when, by the database's clock (now()).
--
--   take:    one INSERT ... ON CONFLICT DO UPDATE ... WHERE expires_at <= now()
--            (no row back: someone else holds a live claim → exit 3)
--   renew:   UPDATE ... SET expires_at = now() + ttl WHERE holder = me AND expires_at > now()
--            (no row: the claim expired or was taken over → stop sending)
--   release: UPDATE ... SET expires_at = now() WHERE holder = me
--
-- A process that dies stops renewing; its claim expires on its own.
CREATE TABLE reconcile_run_lease (
    name        text PRIMARY KEY,            -- 'reconcile.run'
    holder      text NOT NULL,               -- random token of the holding process
    host_name   text NOT NULL DEFAULT '',    -- for operators: who holds it
    pid         integer NOT NULL DEFAULT 0,
    acquired_at timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL         -- the claim is free once now() >= expires_at
);

COMMENT ON TABLE reconcile_run_lease IS
    'the run claim: a run may work only while it holds the row for name reconcile.run and expires_at is in the future (database clock)';
