#!/usr/bin/env bash
# Makes sure a local PostgreSQL answers on 127.0.0.1:5432 (installs it with apt
# when missing, starts it when down) and prints an admin connection string.
# Honours TEST_DATABASE_URL / DATABASE_URL when set: then it only checks them.
set -euo pipefail
say() { printf '== %s\n' "$*" >&2; }

if [ -n "${1:-}" ]; then
  psql "$1" -Atc 'select 1' >/dev/null
  echo "$1"; exit 0
fi

if [ -z "$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null)" ]; then
  say "installing PostgreSQL with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql postgresql-client >&2
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  say "starting PostgreSQL"
  for v in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$v" main start >&2 || true
  done
fi
for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
pg_isready -q -h 127.0.0.1 -p 5432 || { say "PostgreSQL does not answer on 127.0.0.1:5432"; exit 1; }

url="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
if ! psql "$url" -Atc 'select 1' >/dev/null 2>&1; then
  # A stock Debian install wants a password over TCP: give the postgres role one.
  say "setting a password for the postgres role (stock pg_hba.conf)"
  runuser -u postgres -- psql -qc "ALTER ROLE postgres PASSWORD 'postgres'" >&2
  url="postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"
fi
psql "$url" -Atc 'select 1' >/dev/null
echo "$url"
