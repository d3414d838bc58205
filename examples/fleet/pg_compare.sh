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
run_one() { # backend-name url-or-empty kind
  dir=$(mktemp -d /tmp/pgcmp-XXXX)
  if [ -n "$2" ]; then export ICP_DATABASE_URL="$2"; else unset ICP_DATABASE_URL; fi
  # The previous run's dirty pages are written back before this one starts.
  sync
  $ICPD --data-dir "$dir" serve --config examples/fleet/benchmark.toml --no-tls \
    --runtime-listen 127.0.0.1:0 --management-listen 127.0.0.1:0 2>"$dir/log" &
  pid=$!
  until grep -q "listening runtime" "$dir/log"; do sleep 0.1; done
  url=$(sed -n 's/.*listening runtime //p' "$dir/log" | head -1)
  echo "== $1 $3 closed loop"
  $FLEET --server "$url" --data-dir "$dir" --server-pid $pid --duration "$DUR" --kind "$3" --rate 0
  kill $pid; wait $pid || true
  rm -rf "$dir"
}
# Each row on a fresh server and, for PostgreSQL, a fresh database; the two
# backends one after the other for each row.
n=0
for kind in delta full-changed; do
  n=$((n + 1))
  db=pgcmp_$$_$n
  psql "$PG/postgres" -qc "CREATE DATABASE $db TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
  run_one sqlite "" $kind
  run_one postgres "$PG/$db" $kind
  # Dropped, so that later runs do not share the server with vacuuming
  # this one's dead rows.
  psql "$PG/postgres" -qc "DROP DATABASE $db"
done
