#!/usr/bin/env bash
# The side-by-side benchmark runner (issue 4, bench/README.md): ringwire and the
# peer servers of bench/peers, one server thread pinned to CPU $SERVER_CPU, all
# driven by the same load generator, ringwire-load (bench/load, on ringwire-runtime:
# io_uring when its probe passes, each client JSON names its driver), pinned to CPU
# $CLIENT_CPU. Servers alternate case by case within a round (A B C, then C B A
# the next round); the tables report medians over rounds. Every echo is verified
# byte for byte by the client; a failed run makes the script exit 1.
#
# Case names: KIND-CONNSxBYTES
#   ws-echo-100x512     WebSocket echo, closed loop, one message in flight per
#                       connection (uWebSockets load_test method)
#   ws-deflate-100x512  the same with permessage-deflate offered and required
#                       (servers that have it: ringwire only among our peers)
#   ws-rate-100x512     open loop at a fixed rate: RATE msgs/s, or by default
#                       half the slowest server's median of ws-echo-100x512 in
#                       this run; latency from the intended send time
#   tcp-echo-100x512    raw TCP echo, closed loop
#
# Environment (defaults in brackets):
#   SECS [5] WARMUP [1] ROUNDS [3]
#   CASES ["ws-echo-100x20 ws-echo-100x512 ws-echo-500x512 ws-echo-500x16384
#           ws-echo-10x1048576 ws-deflate-100x512 ws-deflate-500x16384
#           ws-rate-100x512 ws-rate-500x16384 tcp-echo-100x512"]
#   SERVERS   subset of: ringwire-uring ringwire-uring-batch ringwire-uring-poll ringwire-epoll fastwebsockets
#             tokio-tungstenite tokio-websockets tokio-websockets-mt
#             monoio-uring monoio-epoll tokio-tcp     [all]
#             (each case runs the servers that speak its protocol)
#   RATE [auto]            fixed rate of the ws-rate cases (msgs/s)
#   BATCH_US [50]          ringwire-uring-batch: --uring-batch-wait-us
#   POLL_US [200]          ringwire-uring-poll: --busy-poll-us (the core polls up to this
#                          long before it sleeps: lower latency, a core that runs flat out)
#   THREADS [1]            ringwire-load threads
#   SKIP_BUILD [0]         1 = use the binaries already built
#   SYSCALLS [auto]        auto | off: count server syscalls with perf stat
#   SERVER_CPU [0] CLIENT_CPU [1]
#   RINGWIRE_TARGET_DIR [$CARGO_TARGET_DIR or target]  PEERS_TARGET_DIR [bench/peers/target]
#   OUT_JSON [bench/results/latest.json]  OUT_MD [bench/RESULTS.md]
#   RAW_DIR  [bench/results/raw/<UTC stamp>]  (git-ignored)
#   PORT_BASE [random in 20000-29999]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${SECS:-5}
BATCH_US=${BATCH_US:-50}
POLL_US=${POLL_US:-200}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
CASES=${CASES:-"ws-echo-100x20 ws-echo-100x512 ws-echo-500x512 ws-echo-500x16384 ws-echo-10x1048576 ws-deflate-100x512 ws-deflate-500x16384 ws-rate-100x512 ws-rate-500x16384 tcp-echo-100x512"}
WS_SERVERS="ringwire-uring ringwire-uring-batch ringwire-uring-poll ringwire-epoll fastwebsockets tokio-tungstenite tokio-websockets tokio-websockets-mt"
DEFLATE_SERVERS="ringwire-uring ringwire-epoll"
TCP_SERVERS="ringwire-uring ringwire-epoll monoio-uring monoio-epoll tokio-tcp"
ALL_SERVERS="ringwire-uring ringwire-uring-batch ringwire-uring-poll ringwire-epoll fastwebsockets tokio-tungstenite tokio-websockets tokio-websockets-mt monoio-uring monoio-epoll tokio-tcp"
SERVERS=${SERVERS:-$ALL_SERVERS}
RATE=${RATE:-auto}
THREADS=${THREADS:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
SYSCALLS=${SYSCALLS:-auto}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
RINGWIRE_TARGET=${RINGWIRE_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}}
PEERS_TARGET=${PEERS_TARGET_DIR:-$ROOT/bench/peers/target}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW=${RAW_DIR:-$ROOT/bench/results/raw/$STAMP}
OUT_JSON=${OUT_JSON:-$ROOT/bench/results/latest.json}
OUT_MD=${OUT_MD:-$ROOT/bench/RESULTS.md}
PORT_NEXT=${PORT_BASE:-$((20000 + RANDOM % 10000))}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

[[ $SECS =~ ^[0-9]+([.][0-9]+)?$ && $WARMUP =~ ^[0-9]+([.][0-9]+)?$ ]] || die "SECS and WARMUP must be numbers"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be an integer >= 1"
[[ $BATCH_US =~ ^[0-9]+$ && $POLL_US =~ ^[0-9]+$ ]] || die "BATCH_US and POLL_US must be integers (µs)"
[[ $RATE == auto || $RATE =~ ^[0-9]+([.][0-9]+)?$ ]] || die "RATE must be auto or a number"
for c in $CASES; do
    [[ $c =~ ^(ws-echo|ws-deflate|ws-rate|tcp-echo)-([0-9]+)x([0-9]+)$ ]] ||
        die "CASES: '$c' is not KIND-CONNSxBYTES (KIND: ws-echo ws-deflate ws-rate tcp-echo)"
done
for s in $SERVERS; do
    [[ " $ALL_SERVERS " == *" $s "* ]] || die "unknown server '$s' (known: $ALL_SERVERS)"
done
for tool in taskset ss python3 cargo; do
    command -v "$tool" >/dev/null || die "'$tool' is required"
done
(($(nproc) >= 2)) || die "needs at least 2 CPUs (server and client are pinned apart)"

servers_for() { # the selected servers that speak a case's protocol
    local list
    case $1 in
    ws-echo-* | ws-rate-*) list=$WS_SERVERS ;;
    ws-deflate-*) list=$DEFLATE_SERVERS ;;
    tcp-echo-*) list=$TCP_SERVERS ;;
    esac
    local s out=()
    for s in $SERVERS; do [[ " $list " == *" $s "* ]] && out+=("$s"); done
    echo "${out[*]}"
}

# ---------------------------------------------------------------- processes
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.2
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
stop_pid() { # TERM, then KILL after ~2 s
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}
port_free() { [[ -z $(ss -Htan "( sport = :$1 )" 2>/dev/null) ]]; }
alloc_port() { # sets PORT
    while :; do
        PORT_NEXT=$((PORT_NEXT + 1))
        ((PORT_NEXT < 32000)) || PORT_NEXT=20001
        if port_free "$PORT_NEXT"; then
            PORT=$PORT_NEXT
            return
        fi
    done
}

# ------------------------------------------------------------------- build
need_peers=0 need_ringwire=0
for s in $SERVERS; do
    if [[ $s == ringwire-* ]]; then need_ringwire=1; else need_peers=1; fi
done
RINGWIRE_BIN=${RINGWIRE_BIN:-$RINGWIRE_TARGET/release/ringwire}
LOAD_BIN=${LOAD_BIN:-$RINGWIRE_TARGET/release/ringwire-load}
PEERS_BIN=$PEERS_TARGET/release
if [[ $SKIP_BUILD != 1 ]]; then
    log "building ringwire-load$( ((need_ringwire)) && echo ' and ringwire') (release) into $RINGWIRE_TARGET"
    pkgs=(-p ringwire-load)
    ((need_ringwire)) && pkgs+=(-p ringwire)
    (cd "$ROOT" && CARGO_TARGET_DIR=$RINGWIRE_TARGET cargo build --release "${pkgs[@]}")
    if ((need_peers)); then
        log "building bench/peers (release) into $PEERS_TARGET"
        (cd "$ROOT/bench/peers" && CARGO_TARGET_DIR=$PEERS_TARGET cargo build --release \
            -p fastwebsockets-echo -p tungstenite-echo -p tokio-websockets-echo -p monoio-echo -p tokio-echo)
    fi
fi
[[ -x $LOAD_BIN ]] || die "$LOAD_BIN missing"
((need_ringwire == 0)) || [[ -x $RINGWIRE_BIN ]] || die "$RINGWIRE_BIN missing"

COUNTER=off
if [[ $SYSCALLS == auto ]] && command -v perf >/dev/null &&
    perf stat -e raw_syscalls:sys_enter -x, -o /dev/null true >/dev/null 2>&1; then
    COUNTER=perf
fi

mkdir -p "$RAW"
RUNS=$RAW/runs.tsv
COMMANDS=$RAW/commands.txt
printf 'round\tcase\tserver\tstatus\tsyscalls\tclient_json\tnote\n' >"$RUNS"
: >"$COMMANDS"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ANY_FAIL=0

server_cmd() { # server port -> SERVER_ARGV, WANT_DRIVER
    local s=$1 port=$2
    case $s in
    ringwire-uring | ringwire-epoll | ringwire-uring-batch | ringwire-uring-poll)
        WANT_DRIVER=${s#ringwire-}
        WANT_DRIVER=${WANT_DRIVER%-batch}
        WANT_DRIVER=${WANT_DRIVER%-poll}
        SERVER_ARGV=("$RINGWIRE_BIN" serve --threads 1 --driver "$WANT_DRIVER")
        # The batch variant: io_uring completions handled in batches (up to BATCH_US µs wait).
        [[ $s == ringwire-uring-batch ]] && SERVER_ARGV+=(--uring-batch-wait-us "$BATCH_US")
        # The busy-poll variant: the core polls up to POLL_US µs before it sleeps.
        [[ $s == ringwire-uring-poll ]] && SERVER_ARGV+=(--busy-poll-us "$POLL_US")
        if [[ $CUR_KIND == tcp-echo ]]; then
            alloc_port
            SERVER_ARGV+=(--tcp-echo "127.0.0.1:$port" --bind "127.0.0.1:$PORT")
        else
            SERVER_ARGV+=(--bind "127.0.0.1:$port")
            [[ $CUR_KIND == ws-deflate ]] || SERVER_ARGV+=(--ws-compression false)
        fi
        ;;
    fastwebsockets) WANT_DRIVER=- SERVER_ARGV=("$PEERS_BIN/fastwebsockets-echo" --addr "127.0.0.1:$port") ;;
    tokio-tungstenite) WANT_DRIVER=- SERVER_ARGV=("$PEERS_BIN/tungstenite-echo" --addr "127.0.0.1:$port") ;;
    tokio-websockets) WANT_DRIVER=- SERVER_ARGV=("$PEERS_BIN/tokio-websockets-echo" --addr "127.0.0.1:$port") ;;
    tokio-websockets-mt)
        WANT_DRIVER=- SERVER_ARGV=("$PEERS_BIN/tokio-websockets-echo" --multi --threads 1 --addr "127.0.0.1:$port")
        ;;
    monoio-uring) WANT_DRIVER=uring SERVER_ARGV=("$PEERS_BIN/monoio-echo" --threads 1 --driver uring --addr "127.0.0.1:$port") ;;
    monoio-epoll) WANT_DRIVER=epoll SERVER_ARGV=("$PEERS_BIN/monoio-echo" --threads 1 --driver legacy --addr "127.0.0.1:$port") ;;
    tokio-tcp) WANT_DRIVER=- SERVER_ARGV=("$PEERS_BIN/tokio-echo" --threads 1 --addr "127.0.0.1:$port") ;;
    esac
}

run_case() { # round case server [rate]
    local round=$1 case_name=$2 server=$3 rate=${4:-}
    [[ $case_name =~ ^(ws-echo|ws-deflate|ws-rate|tcp-echo)-([0-9]+)x([0-9]+)$ ]]
    CUR_KIND=${BASH_REMATCH[1]}
    local conns=${BASH_REMATCH[2]} size=${BASH_REMATCH[3]}
    local tag="r$round-$case_name-$server" pre
    pre=$RAW/$tag
    alloc_port
    local port=$PORT
    server_cmd "$server" "$port"
    local mode=ws-echo extra=()
    case $CUR_KIND in
    tcp-echo) mode=tcp-echo ;;
    ws-deflate) extra=(--deflate --require-deflate) ;;
    ws-rate) extra=(--rate "$rate") ;;
    esac
    taskset -c "$SERVER_CPU" "${SERVER_ARGV[@]}" >"$pre.server.out" 2>"$pre.server.err" &
    local spid=$! status=ok note="" syscalls="" cpid="" i
    PIDS+=("$spid")
    local client=("$LOAD_BIN" "$mode" --addr "127.0.0.1:$port" --conns "$conns" --size "$size"
        --secs "$SECS" --warmup "$WARMUP" --threads "$THREADS" --server-pid "$spid" --json "${extra[@]}")
    printf '%s\n  server: taskset -c %s %s\n  client: taskset -c %s %s\n' "$tag" "$SERVER_CPU" \
        "${SERVER_ARGV[*]}" "$CLIENT_CPU" "${client[*]}" >>"$COMMANDS"
    for i in $(seq 150); do
        [[ -n $(ss -Htln "( sport = :$port )" 2>/dev/null) ]] && break
        kill -0 "$spid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $(ss -Htln "( sport = :$port )" 2>/dev/null) ]]; then
        status=FAIL note="server not listening: $(tail -c 300 "$pre.server.err" | tr '\n\t' '  ')"
    elif [[ $server == ringwire-* ]] && ! grep -q "driver=$WANT_DRIVER," "$pre.server.out" "$pre.server.err"; then
        status=FAIL note="ringwire did not report driver=$WANT_DRIVER"
    fi
    if [[ $status == ok ]]; then
        if [[ $COUNTER == perf ]]; then
            perf stat -e raw_syscalls:sys_enter -x, -o "$pre.perf.csv" -p "$spid" >/dev/null 2>"$pre.perf.err" &
            cpid=$!
            PIDS+=("$cpid")
            sleep 0.3
        fi
        local limit lrc=0
        limit=$(awk -v s="$SECS" -v w="$WARMUP" 'BEGIN { printf "%d", s + w + 90 }')
        timeout "$limit" taskset -c "$CLIENT_CPU" "${client[@]}" >"$pre.client.json" 2>"$pre.client.err" &
        local lpid=$!
        PIDS+=("$lpid")
        wait "$lpid" || lrc=$?
        forget_pid "$lpid"
        if ((lrc != 0)); then
            status=FAIL note="client exit $lrc: $(tail -c 300 "$pre.client.err" | tr '\n\t' '  ')"
        fi
        if [[ -n $cpid ]]; then
            kill -INT "$cpid" 2>/dev/null || true
            for i in $(seq 50); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
            stop_pid "$cpid"
            syscalls=$(awk -F, '/raw_syscalls:sys_enter/ { print $1; exit }' "$pre.perf.csv" 2>/dev/null || true)
            [[ $syscalls =~ ^[0-9]+$ ]] || syscalls=""
        fi
    fi
    stop_pid "$spid"
    [[ $status == ok ]] || ANY_FAIL=1
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$case_name" "$server" "$status" "$syscalls" \
        "$pre.client.json" "$note" >>"$RUNS"
    if [[ $status == ok ]]; then
        log "$tag: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.0f msg/s  p50 %.1f us  p99 %.1f us  server %s us/msg  client cpu %s%%" % (d["msgs_per_sec"], d["p50_us"], d["p99_us"], d["server_cpu_us_per_msg"], d["client_cpu_pct"]))' "$pre.client.json")"
    else
        log "$tag: FAIL: $note"
    fi
}

run_rounds() { # cases... ; RATE_OF[case] for ws-rate cases
    local round c s order
    for ((round = 1; round <= ROUNDS; round++)); do
        for c in "$@"; do
            read -r -a order <<<"$(servers_for "$c")"
            if ((round % 2 == 0)); then
                local rev=() k
                for ((k = ${#order[@]} - 1; k >= 0; k--)); do rev+=("${order[k]}"); done
                order=("${rev[@]}")
            fi
            for s in "${order[@]}"; do run_case "$round" "$c" "$s" "${RATE_OF[$c]:-}"; done
        done
    done
}

# Phase 1: closed-loop cases. Phase 2: fixed-rate cases, whose default rate
# comes from phase 1.
declare -A RATE_OF=()
closed=() open=()
for c in $CASES; do
    if [[ $c == ws-rate-* ]]; then open+=("$c"); else closed+=("$c"); fi
done
((${#closed[@]} == 0)) || run_rounds "${closed[@]}"
for c in "${open[@]}"; do
    if [[ $RATE != auto ]]; then
        RATE_OF[$c]=$RATE
        continue
    fi
    RATE_OF[$c]=$(python3 - "$RUNS" "ws-echo-${c#ws-rate-}" <<'PY'
import csv, json, statistics, sys
runs = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t")
        if r["case"] == sys.argv[2] and r["status"] == "ok"]
by = {}
for r in runs:
    by.setdefault(r["server"], []).append(json.load(open(r["client_json"]))["msgs_per_sec"])
print(round(min(statistics.median(v) for v in by.values()) / 2) if by else 1000)
PY
)
    log "$c: fixed rate ${RATE_OF[$c]} msgs/s"
done
((${#open[@]} == 0)) || run_rounds "${open[@]}"

# ------------------------------------------------------------------ summary
lockver() { # package version from a Cargo.lock
    awk -v n="$2" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$1" 2>/dev/null
}
export MACHINE="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) CPUs$(lscpu | sed -n 's/^Hypervisor vendor:[[:space:]]*/ (VM: /p' | sed 's/$/)/' | head -1)"
export KERNEL="Linux $(uname -r)"
export RUSTC=$(rustc --version 2>/dev/null || echo unknown)
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
[[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null | head -1) ]] || REV="$REV (dirty tree)"
PL=$ROOT/bench/peers/Cargo.lock
export VERSIONS="ringwire $REV; fastwebsockets $(lockver "$PL" fastwebsockets) (hyper $(lockver "$PL" hyper)); tokio-tungstenite $(lockver "$PL" tokio-tungstenite); tokio-websockets $(lockver "$PL" tokio-websockets); monoio $(lockver "$PL" monoio); tokio $(lockver "$PL" tokio); client: ringwire-load on ringwire-runtime (same revision), driver auto (hdrhistogram $(lockver "$ROOT/Cargo.lock" hdrhistogram))"
export LOAD_START LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg) RUNS RAW COMMANDS OUT_JSON OUT_MD STAMP ROOT
export SECS WARMUP ROUNDS SERVER_CPU CLIENT_CPU THREADS COUNTER CASES
export RATES=$(for c in "${!RATE_OF[@]}"; do printf '%s=%s ' "$c" "${RATE_OF[$c]}"; done)
export SETTINGS="SECS=$SECS WARMUP=$WARMUP ROUNDS=$ROUNDS THREADS=$THREADS RATE=$RATE BATCH_US=$BATCH_US POLL_US=$POLL_US CASES=\"$CASES\" SERVERS=\"$SERVERS\""
python3 - <<'PY'
import csv, json, os, statistics

env = os.environ
runs = list(csv.DictReader(open(env["RUNS"]), delimiter="\t"))
DRIVER = {"ringwire-uring": ("ringwire", "uring"), "ringwire-epoll": ("ringwire", "epoll"),
          "ringwire-uring-batch": ("ringwire-batch", "uring"),
          "ringwire-uring-poll": ("ringwire-poll", "uring"),
          "monoio-uring": ("monoio", "uring"), "monoio-epoll": ("monoio", "epoll"),
          "tokio-tcp": ("tokio", "-"), "tokio-websockets-mt": ("tokio-websockets-mt", "-")}

def med(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None

order = []
for r in runs:
    k = (r["case"], r["server"])
    if k not in order:
        order.append(k)
cases, rows = [], []
for case, server in order:
    rs = [r for r in runs if r["case"] == case and r["server"] == server]
    ok = [r for r in rs if r["status"] == "ok"]
    cl = [json.load(open(r["client_json"])) for r in ok]
    sc = [int(r["syscalls"]) / c["messages_total"] for r, c in zip(ok, cl)
          if r["syscalls"] and c.get("messages_total")]
    name, driver = DRIVER.get(server, (server, "-"))
    row = {
        "case": case, "server": name, "driver": driver,
        "msgs_per_sec": med([c["msgs_per_sec"] for c in cl]),
        "p50_us": med([c["p50_us"] for c in cl]),
        "p99_us": med([c["p99_us"] for c in cl]),
        "p999_us": med([c["p999_us"] for c in cl]),
        "server_cpu_us_per_msg": med([c.get("server_cpu_us_per_msg") for c in cl]),
        "server_user_us_per_msg": med([c.get("server_user_us_per_msg") for c in cl]),
        "server_sys_us_per_msg": med([c.get("server_sys_us_per_msg") for c in cl]),
        "p90_us": med([c["p90_us"] for c in cl]),
        "max_us": med([c["max_us"] for c in cl]),
        "client_cpu_us_per_msg": med([c.get("client_cpu_us_per_msg") for c in cl]),
        "server_cpu_pct": med([c.get("server_cpu_pct") for c in cl]),
        "client_cpu_pct": med([c.get("client_cpu_pct") for c in cl]),
        "syscalls_per_msg": med(sc),
        "rate": cl[0].get("rate") if cl else None,
        "runs_ok": len(ok), "runs": len(rs),
    }
    cases.append(row)
    rows.append((row, [c["msgs_per_sec"] for c in cl], [r["note"] for r in rs if r["status"] != "ok"]))

machine = f'{env["MACHINE"]}, {env["KERNEL"]}'
os.makedirs(os.path.dirname(env["OUT_JSON"]) or ".", exist_ok=True)
for p in (env["OUT_JSON"], os.path.join(env["RAW"], "summary.json")):
    with open(p, "w") as f:
        json.dump({"machine": machine, "cases": cases}, f, indent=2)
        f.write("\n")

def fmt(x, nd=1):
    return "n/a" if x is None else f"{x:,.{nd}f}"

raw = env["RAW"]
if raw.startswith(env["ROOT"] + "/"):
    raw = raw[len(env["ROOT"]) + 1:]
md = [f"# Benchmark results ({env['STAMP']})", "",
      f"- machine: {env['MACHINE']}", f"- kernel: {env['KERNEL']}",
      f"- toolchain: {env['RUSTC']}; release builds for generic x86-64 (no target-cpu=native)",
      f"- versions: {env['VERSIONS']}",
      f"- settings: {env['SETTINGS']}",
      f"- fixed rates: {env['RATES'] or '-'}",
      f"- load average (1/5/15 min) at start: {env['LOAD_START']}; at end: {env['LOAD_END']}",
      f"- method: one server thread under `taskset -c {env['SERVER_CPU']}`, ringwire-load "
      f"({env['THREADS']} thread(s)) under `taskset -c {env['CLIENT_CPU']}`; every connection opened "
      f"(and upgraded) before the run; {env['WARMUP']} s warm-up, {env['SECS']} s measured; "
      f"servers alternated case by case, order reversed every other round; a fresh server per run; "
      f"medians over {env['ROUNDS']} round(s). ws-echo/tcp-echo: closed loop, one message in flight "
      f"per connection. ws-rate: open loop, latency from the intended send time (no coordinated "
      f"omission). Every echo verified byte for byte.",
      "- server CPU µs/msg: the server's utime+stime (/proc/PID/stat) over exactly the measured window "
      "÷ messages in it; it holds when the client is the bottleneck. Client CPU likewise. "
      f"syscalls/msg: `perf stat -e raw_syscalls:sys_enter` over the whole run ÷ all its messages "
      f"(counter: {env['COUNTER']}).",
      "- caveat: client and server share one machine; compare servers within one table.",
      f"- raw output: `{raw}/` (server/client/perf output of every run, runs.tsv, commands.txt)", "",
      "| case | server | driver | msgs/s (median) | per round | p50 µs | p99 µs | p99.9 µs | server CPU µs/msg | client CPU µs/msg | server CPU % | syscalls/msg | runs ok |",
      "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
for row, per, _ in rows:
    md.append(f"| {row['case']} | {row['server']} | {row['driver']} | {fmt(row['msgs_per_sec'], 0)} | "
              f"{', '.join(f'{x:,.0f}' for x in per) or '-'} | {fmt(row['p50_us'])} | {fmt(row['p99_us'])} | "
              f"{fmt(row['p999_us'])} | {fmt(row['server_cpu_us_per_msg'], 2)} | "
              f"{fmt(row['client_cpu_us_per_msg'], 2)} | {fmt(row['server_cpu_pct'], 0)} | "
              f"{fmt(row['syscalls_per_msg'], 3)} | {row['runs_ok']}/{row['runs']} |")
# Where the server's time goes, and what that leaves for the targets: a server whose own
# (user-space) time were nil would still cost its kernel time per message.
split = [r for r, _, _ in rows if r["case"].startswith("ws-echo") and r["server_sys_us_per_msg"] is not None]
if split:
    md += ["", "## Where the server's time goes", "",
           "Server CPU µs per message split as the kernel accounts it (/proc/PID/stat utime and stime, "
           "medians over the rounds). Kernel time includes the loopback peer's TCP receive path, "
           "which runs in the sender's softirq. The last column is the most a server could gain on "
           "ringwire io_uring's total by spending no time at all in user space: its total ÷ ringwire "
           "io_uring's kernel time.", "",
           "| case | server | driver | user µs/msg | kernel µs/msg | kernel share | total ÷ ringwire io_uring total | total ÷ ringwire io_uring kernel |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in split:
        ref = next((x for x in split if x["case"] == r["case"] and x["server"] == "ringwire"
                    and x["driver"] == "uring"), None)
        tot = r["server_cpu_us_per_msg"]
        share = r["server_sys_us_per_msg"] / tot if tot else None
        vs_tot = tot / ref["server_cpu_us_per_msg"] if ref and tot and ref["server_cpu_us_per_msg"] else None
        vs_sys = tot / ref["server_sys_us_per_msg"] if ref and tot and ref["server_sys_us_per_msg"] else None
        md.append(f"| {r['case']} | {r['server']} | {r['driver']} | {fmt(r['server_user_us_per_msg'], 2)} | "
                  f"{fmt(r['server_sys_us_per_msg'], 2)} | {fmt(share and 100 * share, 0)}% | "
                  f"{fmt(vs_tot, 2)} | {fmt(vs_sys, 2)} |")
fails = [(r, n) for r, _, ns in rows for n in ns]
if fails:
    md += ["", "## Failed runs", ""] + [f"- {r['case']} {r['server']}: {n}" for r, n in fails]
md += ["", "## Exact commands", "", "```", open(env["COMMANDS"]).read().rstrip(), "```", ""]
text = "\n".join(md)
for p in (env["OUT_MD"], os.path.join(env["RAW"], "summary.md")):
    with open(p, "w") as f:
        f.write(text)
print(text)
PY
log "wrote $OUT_JSON and $OUT_MD (raw: $RAW)"
if ((ANY_FAIL)); then
    log "some runs FAILED (see the table)"
    exit 1
fi
