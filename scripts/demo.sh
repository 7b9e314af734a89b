#!/usr/bin/env bash
# The README's demo: Postgres up, then `reconcile demo` (recreates the database
# reconcile_demo, loads sample rows, runs the job against the built-in
# simulator, prints the outcomes). Pass flags of `reconcile demo` through.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
url=$(bash scripts/pg-up.sh "${DATABASE_URL:-}")
exec go run ./cmd/reconcile demo --database-url "$url" "$@"
