#!/usr/bin/env bash
# The long versions of the robustness tests, too slow for CI (which runs their
# small sizes as part of `go test ./...`):
#
#   TestCrashAnywhere (cmd/reconcile)  3,000 rows, 55 SIGKILLs, at least 10 of
#                                      them during an outcome flush (CI: 600
#                                      rows, 23 kills, at least 5 in a flush)
#   TestFaultMatrix   (internal/app)   10,000 rows through 15% 5xx, 5% resets,
#                                      2% hangs, 5% lost answers (CI: 1,000)
#   TestModelRandomized (internal/modeltest) 50 random step sequences over
#                                      10-20 domains, 25-45 steps each (CI: 8
#                                      sequences, 8-12 domains, 14-20 steps)
#   FuzzParse         (internal/config) fuzzed for $FUZZTIME (default 2m; CI
#                                      only replays the seed corpus)
#
# RECONCILE_LONG_TESTS=1 selects the long sizes. The seeds are fixed; replay
# or vary them with RECONCILE_CRASH_SEED / RECONCILE_FAULT_SEED /
# RECONCILE_MODEL_SEED (one sequence; RECONCILE_MODEL_SEQUENCES: how many). Extra
# arguments go to `go test` (e.g. -run TestFaultMatrix).
#
# Postgres as in scripts/test.sh: TEST_DATABASE_URL, else the local server
# (scripts/pg-up.sh). Takes about 10-12 minutes on 2 cores with -race (8-9 of
# them TestModelRandomized).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  TEST_DATABASE_URL=$(bash scripts/pg-up.sh) || TEST_DATABASE_URL=""
  export TEST_DATABASE_URL
fi
export RECONCILE_LONG_TESTS=1

go test -race -count=1 -timeout 60m -v -run '^(TestCrashAnywhere|TestFaultMatrix|TestModelRandomized)$' \
  ./cmd/reconcile/ ./internal/app/ ./internal/modeltest/ "$@"

go test -count=1 -timeout 30m -run '^$' -fuzz '^FuzzParse$' -fuzztime "${FUZZTIME:-2m}" ./internal/config/
