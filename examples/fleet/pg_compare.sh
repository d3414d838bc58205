#!/bin/sh
# PostgreSQL beside SQLite, same box, one run (BENCHMARKS.md, "PostgreSQL
# beside SQLite"): closed-loop delta and changed full heartbeats against a
# fresh server on each backend.
#   PG=postgres://postgres@127.0.0.1:5432 examples/fleet/pg_compare.sh
# Needs the release binaries (cargo build --release --examples) and a
# PostgreSQL server whose user may create databases.
set -eu
: "${PG:?set PG=postgres://user@host:port (a user that may create databases)}"
DUR=${DUR:-20}
ICPD=target/release/icpd
FLEET=target/release/examples/fleet
run_backend() { # name url-or-empty
  dir=$(mktemp -d /tmp/pgcmp-XXXX)
  if [ -n "$2" ]; then export ICP_DATABASE_URL="$2"; else unset ICP_DATABASE_URL; fi
  $ICPD --data-dir "$dir" serve --config examples/fleet/benchmark.toml --no-tls \
    --runtime-listen 127.0.0.1:0 --management-listen 127.0.0.1:0 2>"$dir/log" &
  pid=$!
  until grep -q "listening runtime" "$dir/log"; do sleep 0.1; done
  url=$(sed -n 's/.*listening runtime //p' "$dir/log" | head -1)
  for kind in delta full-changed; do
    echo "== $1 $kind closed loop"
    $FLEET --server "$url" --data-dir "$dir" --server-pid $pid --duration "$DUR" --kind $kind --rate 0
  done
  kill $pid; wait $pid || true
  rm -rf "$dir"
}
db=pgcmp_$$
psql "$PG/postgres" -qc "CREATE DATABASE $db TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
run_backend sqlite ""
run_backend postgres "$PG/$db"
# Dropped, so that the next run does not share the server with vacuuming
# this one's dead rows.
psql "$PG/postgres" -qc "DROP DATABASE $db"
