#!/usr/bin/env bash
# Side-by-side HTTP/1.1 benchmark with wrk: keep-alive, 100 connections, for a small static
# file (/hello.txt, 13 bytes), a handler (/hello, "Hello, World!") and a 1 MiB static file
# (/big.bin, $CONNS_LARGE connections; sendfile on every server that has it), against
#   ringwire (examples/http_hello, ONE thread, io_uring and epoll drivers),
#   nginx (worker_processes 1; `return 200` for the handler),
#   h2o (num-threads 1; an mruby handler).
# Every server is pinned to CPU $SERVER_CPU, wrk (one thread) to CPU $CLIENT_CPU. Loopback only;
# every run is bounded in time. Writes $OUT_DIR/latest.md with the figures, the machine and
# versions, and every wrk output verbatim.
#
# Environment (defaults in brackets):
#   SECS [5]          measured seconds per run (after a 1 s warm-up run)
#   CONNS [100]       wrk connections
#   CONNS_LARGE [10]  wrk connections for the 1 MiB file
#   PROFILE [debug]   cargo profile of ringwire (debug: the shared machine's rule; opt-level 1)
#   SERVER_CPU [0], CLIENT_CPU [1]
#   CARGO_TARGET_DIR  [target]
#   OUT_DIR           [bench/results/http]
#   SERVERS           subset of: ringwire-uring ringwire-epoll nginx h2o  [all]
# Installs wrk, nginx and h2o with apt-get when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${SECS:-5}
CONNS=${CONNS:-100}
CONNS_LARGE=${CONNS_LARGE:-10}
HZ=$(getconf CLK_TCK)
PROFILE=${PROFILE:-debug}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT_DIR=${OUT_DIR:-$ROOT/bench/results/http}
SERVERS=${SERVERS:-"ringwire-uring ringwire-epoll nginx h2o"}
PORT=$((30000 + RANDOM % 10000))

log() { printf '[http-bench] %s\n' "$*" >&2; }

need=()
for t in wrk nginx h2o; do command -v "$t" >/dev/null || need+=("$t"); done
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get install -y wrk nginx h2o >/dev/null
fi

if [[ $PROFILE == release ]]; then
    cargo build --release -p ringwire --example http_hello --manifest-path "$ROOT/Cargo.toml"
    BIN=$TARGET/release/examples/http_hello
else
    cargo build -p ringwire --example http_hello --manifest-path "$ROOT/Cargo.toml"
    BIN=$TARGET/debug/examples/http_hello
fi

WORK=$(mktemp -d /tmp/ringwire-http-bench.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/www" "$OUT_DIR"
printf 'Hello, World!' >"$WORK/www/hello.txt"
head -c 1048576 /dev/urandom >"$WORK/www/big.bin"
chmod -R a+rX "$WORK/www"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 1 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$1/hello.txt"; then return 0; fi
        sleep 0.1
    done
    log "server on port $1 did not come up"
    return 1
}

start_server() { # name port -> pid in SERVER_PID
    local name=$1 port=$2
    case $name in
    ringwire-uring | ringwire-epoll)
        RINGWIRE_DRIVER=${name#ringwire-} taskset -c "$SERVER_CPU" \
            "$BIN" "127.0.0.1:$port" "$WORK/www" >"$WORK/$name.log" 2>&1 &
        ;;
    nginx)
        mkdir -p "$WORK/nginx"
        cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    types { text/plain txt; application/octet-stream bin; }
    server {
        listen 127.0.0.1:$port;
        root $WORK/www;
        location = /hello { default_type text/plain; return 200 "Hello, World!"; }
    }
}
EOF
        taskset -c "$SERVER_CPU" nginx -c "$WORK/nginx/nginx.conf" >"$WORK/nginx.log" 2>&1 &
        ;;
    h2o)
        local user=""
        [[ $(id -u) == 0 ]] && user="user: nobody"
        cat >"$WORK/h2o.conf" <<EOF
$user
num-threads: 1
listen:
  host: 127.0.0.1
  port: $port
hosts:
  default:
    paths:
      /hello:
        mruby.handler: |
          Proc.new do |env|
            [200, {"content-type" => "text/plain"}, ["Hello, World!"]]
          end
      /:
        file.dir: $WORK/www
EOF
        taskset -c "$SERVER_CPU" h2o -c "$WORK/h2o.conf" >"$WORK/h2o.log" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
}

RAW=$WORK/raw.txt
: >"$RAW"
declare -A RPS LAT CPU XFER
# utime+stime ticks of a process and its children threads/processes (nginx/h2o workers).
cpu_ticks() {
    local total=0 p
    for p in $1 $(pgrep -P "$1" || true); do
        [[ -r /proc/$p/stat ]] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$total"
}
for s in $SERVERS; do
    PORT=$((PORT + 1))
    start_server "$s" "$PORT"
    wait_port "$PORT"
    for case in static handler large; do
        path=/hello.txt conns=$CONNS
        [[ $case == handler ]] && path=/hello
        if [[ $case == large ]]; then
            path=/big.bin conns=$CONNS_LARGE
            curl -s -o "$WORK/got.bin" "http://127.0.0.1:$PORT$path"
            cmp -s "$WORK/got.bin" "$WORK/www/big.bin" || { log "$s $path: wrong bytes"; exit 1; }
        else
            body=$(curl -s "http://127.0.0.1:$PORT$path")
            [[ $body == "Hello, World!" ]] || { log "$s $path answered '$body'"; exit 1; }
        fi
        taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$PORT$path" >/dev/null
        # Server CPU (utime+stime of the server's processes) over the measured run.
        t0=$(cpu_ticks "$SERVER_PID")
        out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${SECS}s" --latency \
            "http://127.0.0.1:$PORT$path")
        t1=$(cpu_ticks "$SERVER_PID")
        {
            echo "### $s $case ($path)"
            echo '```'
            echo "$out"
            echo '```'
        } >>"$RAW"
        RPS[$s,$case]=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        reqs=$(awk '/requests in/ {print $1}' <<<"$out")
        CPU[$s,$case]=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" \
            'BEGIN { if (n > 0) printf "%.1f", d / hz * 1e6 / n; else print "-" }')
        XFER[$s,$case]=$(awk '/^Transfer\/sec:/ {print $2}' <<<"$out")
        LAT[$s,$case]=$(awk '/^ +50%/ {print $2}' <<<"$out")/$(awk '/^ +99%/ {print $2}' <<<"$out")
        errs=$(grep -E 'Socket errors|Non-2xx' <<<"$out" || true)
        [[ -n $errs ]] && LAT[$s,$case]+=" ($errs)"
        log "$s $case: ${RPS[$s,$case]} req/s"
    done
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
done

{
    echo "# HTTP/1.1 keep-alive, wrk -t1 -c$CONNS (1 MiB file: -c$CONNS_LARGE) -d${SECS}s, loopback"
    echo
    echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'); command: \`scripts/http-bench.sh\` (SECS=$SECS CONNS=$CONNS PROFILE=$PROFILE)."
    echo
    echo "Machine: $(nproc) CPUs, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//'), $(uname -sr)."
    echo "The machine is shared with other engineers' builds and CI runs: figures are noisy."
    echo "Server pinned to CPU $SERVER_CPU (one thread / worker), wrk (one thread) to CPU $CLIENT_CPU."
    echo
    echo "Versions: ringwire $(git -C "$ROOT" rev-parse --short HEAD) + working tree, profile **$PROFILE**" \
        "(dev profile = opt-level 1: NOT comparable to the peers' optimised builds);" \
        "$(nginx -v 2>&1 | sed 's/.*: //'); h2o $(h2o --version | awk 'NR==1 {print $3}');" \
        "$(wrk --version 2>&1 | awk 'NR==1 {print $1, $2}')."
    echo
    echo "Server CPU µs/req: the server's utime+stime over the measured run (from /proc, 10 ms ticks)"
    echo "divided by the requests wrk counted; it holds even when wrk is the bottleneck."
    echo
    echo "| server | static /hello.txt req/s | p50/p99 | CPU µs/req | handler /hello req/s | p50/p99 | CPU µs/req | 1 MiB /big.bin req/s ($CONNS_LARGE conns) | transfer/s | CPU µs/req |"
    echo "|---|---:|---|---:|---:|---|---:|---:|---:|---:|"
    for s in $SERVERS; do
        echo "| $s | ${RPS[$s,static]} | ${LAT[$s,static]} | ${CPU[$s,static]} | ${RPS[$s,handler]} | ${LAT[$s,handler]} | ${CPU[$s,handler]} | ${RPS[$s,large]} | ${XFER[$s,large]} | ${CPU[$s,large]} |"
    done
    echo
    echo "## Raw wrk output"
    echo
    cat "$RAW"
} >"$OUT_DIR/latest.md"
log "wrote $OUT_DIR/latest.md"
cat "$OUT_DIR/latest.md" | sed -n '1,20p'
