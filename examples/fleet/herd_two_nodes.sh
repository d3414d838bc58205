#!/bin/sh
# The restart herd against two nodes on one PostgreSQL database (BENCHMARKS.md,
# "PostgreSQL beside SQLite"): nodes A and B behind HAProxy (TCP, round
# robin), 10,000 runtimes heartbeating through it every 10 s; 15 s into the
# measurement both nodes are restarted at once (SIGTERM, start again), so
# every runtime reconnects and is answered by a node that has just started.
#   PG=postgres://postgres@127.0.0.1:5432 examples/fleet/herd_two_nodes.sh
# Needs haproxy (Debian's package), the release binaries and a PostgreSQL
# user that may create databases. The fleet's own report counts 5xx and
# failures.
set -eu
: "${PG:?set PG=postgres://user@host:port}"
ICPD=target/release/icpd
FLEET=target/release/examples/fleet
RUNTIMES=${RUNTIMES:-10000}
CONNS=${CONNS:-4000}
db=herd_$$
psql "$PG/postgres" -qc "CREATE DATABASE $db TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
export ICP_DATABASE_URL="$PG/$db"
ICP_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export ICP_MASTER_KEY
work=$(mktemp -d /tmp/herd-XXXX)
start_node() { # name runtime-port management-port
  $ICPD --data-dir "$work/$1" serve --config examples/fleet/benchmark.toml --no-tls \
    --runtime-listen 127.0.0.1:$2 --management-listen 127.0.0.1:$3 2>>"$work/$1.log" &
  echo $! > "$work/$1.pid"
  until curl -sf http://127.0.0.1:$3/healthz >/dev/null; do sleep 0.05; done
}
start_node a 29441 29451
start_node b 29442 29452
cat > "$work/haproxy.cfg" <<CFG
global
    maxconn 9000
defaults
    mode tcp
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch
frontend runtimes
    bind 127.0.0.1:29440
    default_backend icpd
backend icpd
    balance roundrobin
    server a 127.0.0.1:29441 check inter 500 fall 1 rise 1
    server b 127.0.0.1:29442 check inter 500 fall 1 rise 1
CFG
haproxy -f "$work/haproxy.cfg" -D -p "$work/haproxy.pid"
rows() { psql "$PG/$db" -tAc "SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables"; }
( sleep $(( ${RESTART_AT:-45} - 12 )); r0=$(rows); sleep 10; r1=$(rows)
  echo "rows written in steady state, 10 s before the restart: $(( (r1 - r0) / 10 ))/s for $RUNTIMES runtimes" ) &
( sleep "${RESTART_AT:-45}"
  t0=$(date +%s.%N)
  kill "$(cat "$work/a.pid")" "$(cat "$work/b.pid")"
  while kill -0 "$(cat "$work/a.pid")" 2>/dev/null || kill -0 "$(cat "$work/b.pid")" 2>/dev/null; do sleep 0.02; done
  start_node a 29441 29451
  start_node b 29442 29452
  echo "both nodes restarted: down $(echo "$(date +%s.%N) - $t0" | bc) s" ) &
restarter=$!
$FLEET --server http://127.0.0.1:29440 --data-dir "$work/a" --runtimes "$RUNTIMES" \
  --connections "$CONNS" --threads 16 --rate $((RUNTIMES / 10)) --duration "${DURATION:-60}"
wait $restarter
grep -h "ERROR\|panicked" "$work"/a.log "$work"/b.log | head -5 || true
kill "$(cat "$work/haproxy.pid")" "$(cat "$work/a.pid")" "$(cat "$work/b.pid")" 2>/dev/null || true
