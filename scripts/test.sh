#!/usr/bin/env bash
# The README's test command. Tests need a Postgres: TEST_DATABASE_URL (an admin
# connection string); when it is unset this script brings up the local one
# (scripts/pg-up.sh), and failing that the tests start a throwaway cluster
# from local Postgres binaries, or skip with the reason. The PgBouncer tests
# need a pgbouncer binary: installed with apt when missing
# (scripts/pgbouncer-up.sh); without one they skip with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  TEST_DATABASE_URL=$(bash scripts/pg-up.sh) || TEST_DATABASE_URL=""
  export TEST_DATABASE_URL
fi
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
  bash scripts/pgbouncer-up.sh >/dev/null || echo "== no pgbouncer: the PgBouncer tests will skip" >&2
fi
go test -race -count=1 -timeout 30m ./... "$@"
# The alert rules' tests (promtool's format, run by Prometheus' PromQL engine):
# a module of its own, so the Prometheus server module stays out of the job's go.mod.
(cd deploy/prometheus && go test -count=1 ./...)
