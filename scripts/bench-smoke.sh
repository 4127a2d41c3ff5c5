#!/usr/bin/env bash
# CI smoke of the benchmark harness (seconds, small counts), so it never rots:
# scripts/bench.sh on ringwire's two drivers with tiny cases (results go to a
# temporary directory, not to bench/results/latest.json), then every other
# ringwire-load mode once: connection storm, idle pings, broadcast fan-out,
# several source addresses, two client threads, and over TLS (wss echo, full
# and resumed handshake storms, scripts/bench-tls.sh's modes), and perf/idle_memory.py.
# Exits non-zero on any failure (every echo, pong and broadcast is verified by the client).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
TMP=$(mktemp -d)
SPID=""
cleanup() {
    [[ -z $SPID ]] || { kill -TERM "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; }
    rm -rf "$TMP"
}
trap cleanup EXIT

SECS=0.5 WARMUP=0.2 ROUNDS=1 RATE=2000 \
    CASES="ws-echo-10x20 ws-echo-2x1048576 ws-deflate-10x512 ws-rate-10x512 tcp-echo-10x64" \
    SERVERS="ringwire-uring ringwire-epoll" \
    OUT_JSON=$TMP/latest.json OUT_MD=$TMP/RESULTS.md RAW_DIR=$TMP/raw \
    bash "$ROOT/scripts/bench.sh" >/dev/null
python3 - "$TMP/latest.json" "$TMP/RESULTS.md" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
keys = {"case", "server", "driver", "msgs_per_sec", "p50_us", "p99_us", "p999_us", "server_cpu_us_per_msg",
        "server_user_us_per_msg", "server_sys_us_per_msg"}
assert d["machine"] and d["cases"], d
for c in d["cases"]:
    assert keys <= c.keys(), c
    assert c["msgs_per_sec"] and c["msgs_per_sec"] > 0, c
    # The split adds up to the total (each is a median, and /proc counts in ticks).
    if c["server_cpu_us_per_msg"] and c["case"].startswith("ws-echo"):
        parts = c["server_user_us_per_msg"] + c["server_sys_us_per_msg"]
        assert abs(parts - c["server_cpu_us_per_msg"]) <= 0.05 * c["server_cpu_us_per_msg"] + 0.01, c
assert "## Where the server's time goes" in open(sys.argv[2]).read()
print(f"bench.sh smoke: {len(d['cases'])} case/server rows in latest.json")
PY

LOAD=$TARGET/release/ringwire-load
PORT=$((32000 + RANDOM % 1000))
TPORT=$((PORT + 1000))
"$TARGET/release/ringwire" serve --threads 2 --bind "127.0.0.1:$PORT" \
    --bind-tls "127.0.0.1:$TPORT" --tls-self-signed >"$TMP/server.out" 2>&1 &
SPID=$!
for _ in $(seq 100); do
    grep -q "listening on 127.0.0.1:$PORT " "$TMP/server.out" &&
        grep -q "listening on 127.0.0.1:$TPORT " "$TMP/server.out" && break
    sleep 0.1
done
A=(--addr "127.0.0.1:$PORT" --secs 0.5 --warmup 0.2 --server-pid "$SPID")
"$LOAD" storm "${A[@]}" --conns 4
"$LOAD" storm "${A[@]}" --conns 4 --tcp-only --src-count 3
"$LOAD" idle "${A[@]}" --conns 300 --interval 0.2 --src-count 2 --threads 2
"$LOAD" broadcast "${A[@]}" --conns 50 --rate 100 --threads 2
"$LOAD" ws-echo "${A[@]}" --conns 8 --size 300 --text --deflate --require-deflate --threads 2
"$LOAD" ws-echo --addr "127.0.0.1:$PORT" --conns 3 --size 64 --count 50 --json >/dev/null
T=(--addr "127.0.0.1:$TPORT" --secs 0.5 --warmup 0.2 --server-pid "$SPID" --tls --danger-accept-invalid-certs)
"$LOAD" ws-echo "${T[@]}" --conns 8 --size 512
"$LOAD" ws-echo "${T[@]}" --conns 4 --size 100000 --tls12 --rate 200
"$LOAD" storm "${T[@]}" --conns 4
"$LOAD" storm "${T[@]}" --conns 4 --resume # fails unless handshakes resumed
# perf/idle_memory.py, on both drivers, with its connections spread over two server processes
# (the path it takes past RLIMIT_NOFILE).
python3 "$ROOT/perf/idle_memory.py" --bin "$TARGET/release/ringwire" --conns 1500 --procs 2
# ...and with a heartbeat (its state rides on the connection deadline).
python3 "$ROOT/perf/idle_memory.py" --bin "$TARGET/release/ringwire" --driver uring --conns 1500 \
  --serve-arg=--ws-heartbeat-ms=30000
# ...and Server-Sent Events subscribers.
python3 "$ROOT/perf/idle_memory.py" --bin "$TARGET/release/ringwire" --driver epoll --proto sse --conns 1500
# ...and keep-alive HTTP/1.1 connections between requests.
python3 "$ROOT/perf/idle_memory.py" --bin "$TARGET/release/ringwire" --driver uring --proto http --conns 1500
echo "bench smoke: all modes OK"
