#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the tests (Debian packages; installed when missing).
# Prints the URL to use as PORTRAIT_TEST_PG_URL on stdout; everything else goes to stderr.
set -euo pipefail
PGPORT=${PGPORT:-54329}
PGDIR=${PGDIR:-/tmp/portrait-pg}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ]; then
  echo "installing PostgreSQL (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
run_as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if ! run_as_pg "$bindir/pg_isready" -q -h /tmp -p "$PGPORT" 2>/dev/null; then
  rm -rf "$PGDIR"; mkdir -p "$PGDIR"
  [ "$(id -u)" = 0 ] && chown postgres "$PGDIR"
  run_as_pg "$bindir/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
  run_as_pg "$bindir/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
    -o "-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2
fi
echo "postgresql://postgres@127.0.0.1:$PGPORT/postgres"
