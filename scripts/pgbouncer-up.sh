#!/usr/bin/env bash
# Makes sure a pgbouncer binary is installed (Debian's package, with apt),
# for the tests that put PgBouncer between the job and Postgres. It does not
# start a pooler: each test starts its own on a free port with a generated
# ini (internal/testdb ThroughPgBouncer), and skips with the reason when no
# binary is found. Prints the binary's path.
set -euo pipefail
say() { printf '== %s\n' "$*" >&2; }

find_bin() { command -v pgbouncer 2>/dev/null || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; } || true; }

bin=$(find_bin)
if [ -z "$bin" ]; then
  say "installing PgBouncer with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # The package's service is not needed (and not started without systemd).
  apt-get install -y -qq --no-install-recommends pgbouncer >&2
  bin=$(find_bin)
fi
[ -n "$bin" ] || { say "pgbouncer is not installed"; exit 1; }
"$bin" --version | head -1 >&2
echo "$bin"
