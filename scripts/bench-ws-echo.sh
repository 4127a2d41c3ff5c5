#!/usr/bin/env bash
# Side-by-side WebSocket echo benchmark: ringwire (uring, epoll; no
# permessage-deflate) vs fastwebsockets vs tokio-tungstenite, each with ONE
# server thread pinned to CPU $SERVER_CPU, all driven by the same closed-loop
# client (ws-echo-load: the uWebSockets load_test method, every connection
# upgraded first, then one masked message in flight per connection, every echo
# verified byte-exactly) pinned to CPU $CLIENT_CPU. Mirrors
# scripts/bench-tcp-echo.sh. Loopback only; every run is bounded in time.
# See bench/README.md.
#
# Environment (defaults in brackets):
#   SECS [4]            measured seconds per run
#   WARMUP [1]          warm-up seconds per run (not measured)
#   ROUNDS [2]          rounds; servers alternate case by case within a round
#   CASES ["100x20 100x512 500x512 500x16384"]
#                       CONNSxBYTES pairs (connections come from 127.0.0.1
#                       only, fine up to ~500)
#   OPCODE [binary]     binary (what uWS load_test sends) or text (adds the
#                       servers' UTF-8 validation)
#   SERVERS             subset of: ringwire-uring ringwire-epoll fastwebsockets
#                       tokio-tungstenite   [all four]
#   SKIP_RINGWIRE [0]   1 = do not build or run ringwire
#   SKIP_BUILD [0]      1 = use the binaries already built
#   SYSCALLS [auto]     auto | perf | strace | off  (how syscalls/msg is counted)
#   SERVER_CPU [0], CLIENT_CPU [1]
#   PEERS_TARGET_DIR    [bench/peers/target]   cargo target dir of bench/peers
#   RINGWIRE_TARGET_DIR [target]               cargo target dir of the main workspace
#   RINGWIRE_BIN        [$RINGWIRE_TARGET_DIR/release/ringwire]
#   OUT_DIR             [bench/results/ws-echo]
#   PORT_BASE           [random in 20000-29999] first TCP port tried
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

SECS=${SECS:-4}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-2}
CASES=${CASES:-"100x20 100x512 500x512 500x16384"}
OPCODE=${OPCODE:-binary}
SKIP_RINGWIRE=${SKIP_RINGWIRE:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
SYSCALLS=${SYSCALLS:-auto}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PEERS_TARGET=${PEERS_TARGET_DIR:-$ROOT/bench/peers/target}
RINGWIRE_TARGET=${RINGWIRE_TARGET_DIR:-$ROOT/target}
RINGWIRE_BIN=${RINGWIRE_BIN:-$RINGWIRE_TARGET/release/ringwire}
OUT_BASE=${OUT_DIR:-$ROOT/bench/results/ws-echo}
PORT_NEXT=${PORT_BASE:-$((20000 + RANDOM % 10000))}

ALL_SERVERS="ringwire-uring ringwire-epoll fastwebsockets tokio-tungstenite"
SERVERS=${SERVERS:-$ALL_SERVERS}

log() { printf '[bench-ws-echo] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

is_num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }
is_int() { [[ $1 =~ ^[0-9]+$ ]]; }
is_num "$SECS" && is_num "$WARMUP" || die "SECS and WARMUP must be numbers"
is_int "$ROUNDS" && ((ROUNDS >= 1)) || die "ROUNDS must be an integer >= 1"
[[ $OPCODE == binary || $OPCODE == text ]] || die "OPCODE must be binary or text"
for c in $CASES; do
    [[ $c =~ ^([0-9]+)x([0-9]+)$ ]] || die "CASES must list CONNSxBYTES pairs (got '$c')"
    conns=${BASH_REMATCH[1]} size=${BASH_REMATCH[2]}
    ((conns >= 1)) || die "CASES: connections must be >= 1 (got '$c')"
    ((conns <= 1000)) || die "CASES: $conns connections from one source address is too many here"
    ((conns <= 500)) || log "warning: $conns connections from 127.0.0.1 only; >500 untested"
    ((size <= 16777216)) || die "CASES: message size $size is over 16 MiB"
done
[[ -n ${CASES// /} ]] || die "no case to run"
for s in $SERVERS; do
    [[ " $ALL_SERVERS " == *" $s "* ]] || die "unknown server '$s' in SERVERS (known: $ALL_SERVERS)"
done
if [[ $SKIP_RINGWIRE == 1 ]]; then
    SERVERS=$(for s in $SERVERS; do [[ $s == ringwire-* ]] || printf '%s ' "$s"; done)
fi
[[ -n ${SERVERS// /} ]] || die "no server left to run"

for tool in taskset ss python3 cargo; do
    command -v "$tool" >/dev/null || die "'$tool' is required"
done
(($(nproc) >= 2)) || die "needs at least 2 CPUs (server and client are pinned apart)"

# ---------------------------------------------------------------- processes
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.2
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

forget_pid() { # drop a reaped pid from PIDS
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

proc_cpu_ticks() { # utime + stime (all threads) of a pid, in USER_HZ ticks
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo ""
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
PEERS_BIN=$PEERS_TARGET/release
if [[ $SKIP_BUILD != 1 ]]; then
    log "building bench/peers (release) into $PEERS_TARGET"
    (cd "$ROOT/bench/peers" && CARGO_TARGET_DIR=$PEERS_TARGET cargo build --release \
        -p ws-echo-load -p fastwebsockets-echo -p tungstenite-echo)
    if [[ $SKIP_RINGWIRE != 1 ]]; then
        log "building ringwire (release) into $RINGWIRE_TARGET"
        (cd "$ROOT" && CARGO_TARGET_DIR=$RINGWIRE_TARGET cargo build --release -p ringwire) ||
            die "building ringwire failed (set SKIP_RINGWIRE=1 to benchmark the peers only)"
    fi
fi
for b in ws-echo-load fastwebsockets-echo tungstenite-echo; do
    [[ -x $PEERS_BIN/$b ]] || die "$PEERS_BIN/$b missing (build bench/peers or unset SKIP_BUILD)"
done
if [[ $SKIP_RINGWIRE != 1 ]]; then
    [[ -x $RINGWIRE_BIN ]] || die "$RINGWIRE_BIN missing (set SKIP_RINGWIRE=1 to skip ringwire)"
fi

# -------------------------------------------------------- syscall counting
perf_works() {
    command -v perf >/dev/null &&
        perf stat -e raw_syscalls:sys_enter -x, -o /dev/null -- true >/dev/null 2>&1
}
COUNTER=off
COUNTER_NOTE=""
case $SYSCALLS in
off) COUNTER_NOTE="syscall counting disabled (SYSCALLS=off)" ;;
auto | perf)
    if ! command -v perf >/dev/null && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
        log "perf missing: apt-get install -y linux-perf"
        apt-get install -y linux-perf >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && apt-get install -y linux-perf >/dev/null 2>&1; } ||
            log "could not install linux-perf"
    fi
    if perf_works; then
        COUNTER=perf
        COUNTER_NOTE="perf stat -e raw_syscalls:sys_enter -p SERVER_PID"
    elif [[ $SYSCALLS == perf ]]; then
        die "SYSCALLS=perf but 'perf stat -e raw_syscalls:sys_enter' does not work here"
    elif command -v strace >/dev/null; then
        COUNTER=strace
        COUNTER_NOTE="FALLBACK strace -c -f -p SERVER_PID (perf unusable); strace slows the server, so throughput and latency of these runs are NOT comparable"
    else
        COUNTER_NOTE="neither perf nor strace usable: syscalls/msg not measured"
    fi
    ;;
strace)
    command -v strace >/dev/null || die "SYSCALLS=strace but strace is missing"
    COUNTER=strace
    COUNTER_NOTE="strace -c -f -p SERVER_PID (requested); strace slows the server, so throughput and latency of these runs are NOT comparable"
    ;;
*) die "SYSCALLS must be auto, perf, strace or off" ;;
esac
log "syscall counter: $COUNTER_NOTE"

# ---------------------------------------------------------------- results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RAW=$OUT_BASE/$STAMP
mkdir -p "$RAW"
RUNS=$RAW/runs.tsv
printf 'round\tcase\tconns\tsize\tserver\tstatus\tsyscalls\tcounter\tserver_cpu_pct\tserver_cpu_ticks\tclient_json\tnote\n' >"$RUNS"
COMMANDS=$RAW/commands.txt
: >"$COMMANDS"
ANY_FAIL=0
OPCODE_FLAG=()
[[ $OPCODE == binary ]] && OPCODE_FLAG=(--binary)
log "raw results in $RAW"

# Runs one case against one server; appends a line to $RUNS.
run_case() {
    local round=$1 conns=$2 size=$3 server=$4
    local case_name="ws-echo-${conns}x${size}"
    local tag="r${round}-${conns}x${size}-${server}"
    local pre=$RAW/$tag
    local want_driver cmd=()
    alloc_port
    local port=$PORT
    case $server in
    ringwire-uring | ringwire-epoll)
        want_driver=${server#ringwire-}
        cmd=("$RINGWIRE_BIN" serve --threads 1 --driver "$want_driver"
            --ws-compression false --bind "127.0.0.1:$port")
        ;;
    fastwebsockets)
        want_driver=-
        cmd=("$PEERS_BIN/fastwebsockets-echo" --addr "127.0.0.1:$port")
        ;;
    tokio-tungstenite)
        want_driver=-
        cmd=("$PEERS_BIN/tungstenite-echo" --addr "127.0.0.1:$port")
        ;;
    esac
    local client=("$PEERS_BIN/ws-echo-load" --addr "127.0.0.1:$port" --conns "$conns"
        --size "$size" --secs "$SECS" --warmup "$WARMUP" "${OPCODE_FLAG[@]}" --json)
    printf '%s  server: taskset -c %s %s\n%s  client: taskset -c %s %s\n' \
        "$tag" "$SERVER_CPU" "${cmd[*]}" "$tag" "$CLIENT_CPU" "${client[*]}" >>"$COMMANDS"

    local status=ok note="" syscalls="" spid cpid="" scpu="" sticks="" tick0 tick1 t0 t1
    taskset -c "$SERVER_CPU" "${cmd[@]}" >"$pre.server.out" 2>"$pre.server.err" &
    spid=$!
    PIDS+=("$spid")

    # Wait (up to 15 s) for the readiness line of the WebSocket listener.
    local i line=""
    for i in $(seq 150); do
        # stdout per the contract; stderr too in case a logger writes there
        line=$(cat "$pre.server.out" "$pre.server.err" 2>/dev/null |
            grep -m1 -F "listening on 127.0.0.1:$port " || true)
        [[ -n $line ]] && break
        kill -0 "$spid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $line ]]; then
        status=FAIL
        note="server not ready: $(tail -c 300 "$pre.server.err" 2>/dev/null | tr '\n\t' '  ' || true)"
    elif [[ $line != *"driver=$want_driver,"* ]]; then
        status=FAIL
        note="server reported '${line}', wanted driver=$want_driver"
    fi

    if [[ $status == ok ]]; then
        case $COUNTER in
        perf)
            perf stat -e raw_syscalls:sys_enter -x, -o "$pre.perf.csv" -p "$spid" \
                >/dev/null 2>"$pre.perf.err" &
            cpid=$!
            ;;
        strace)
            strace -c -f -p "$spid" -o "$pre.strace.txt" >/dev/null 2>"$pre.strace.err" &
            cpid=$!
            ;;
        esac
        if [[ -n $cpid ]]; then
            PIDS+=("$cpid")
            sleep 0.5 # let the counter attach before the first connection
        fi

        local limit
        limit=$(awk -v s="$SECS" -v w="$WARMUP" 'BEGIN { printf "%d", s + w + 60 }')
        tick0=$(proc_cpu_ticks "$spid")
        t0=$(date +%s.%N)
        # In the background + wait, so a TERM/INT to this script is handled at
        # once (bash defers traps until a foreground child exits).
        timeout "$limit" taskset -c "$CLIENT_CPU" "${client[@]}" \
            >"$pre.client.json" 2>"$pre.client.err" &
        local lpid=$!
        PIDS+=("$lpid")
        local lrc=0
        wait "$lpid" || lrc=$?
        forget_pid "$lpid"
        if ((lrc != 0)); then
            status=FAIL
            note="client failed: $(tail -c 300 "$pre.client.err" 2>/dev/null | tr '\n\t' '  ' || true)"
        fi
        tick1=$(proc_cpu_ticks "$spid")
        t1=$(date +%s.%N)
        # Server CPU share over the client's whole run (handshakes, warm-up and
        # measured seconds): well below 100 % hints that the client is the
        # bottleneck.
        if [[ -n $tick0 && -n $tick1 ]]; then
            sticks=$((tick1 - tick0))
            scpu=$(awk -v a="$tick0" -v b="$tick1" -v t0="$t0" -v t1="$t1" \
                'BEGIN { if (t1 > t0) printf "%.1f", (b - a) / (t1 - t0) }')
        fi
        sleep 0.3 # the server sees the client's FINs and closes its sockets

        if [[ -n $cpid ]]; then
            kill -INT "$cpid" 2>/dev/null || true
            for i in $(seq 50); do
                kill -0 "$cpid" 2>/dev/null || break
                sleep 0.1
            done
            stop_pid "$cpid"
            case $COUNTER in
            perf)
                syscalls=$(awk -F, '/raw_syscalls:sys_enter/ { print $1; exit }' "$pre.perf.csv" 2>/dev/null || true)
                ;;
            strace)
                syscalls=$(awk '$NF == "total" { print $4; exit }' "$pre.strace.txt" 2>/dev/null || true)
                ;;
            esac
            [[ $syscalls =~ ^[0-9]+$ ]] || { note="${note:+$note; }syscall count unreadable"; syscalls=""; }
        fi
    fi
    stop_pid "$spid"

    [[ $status == ok ]] || ANY_FAIL=1
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$case_name" "$conns" "$size" \
        "$server" "$status" "$syscalls" "$COUNTER" "$scpu" "$sticks" "$pre.client.json" "$note" >>"$RUNS"
    if [[ $status == ok ]]; then
        log "$tag: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.0f msg/s  p50 %.1f us  p99 %.1f us  client cpu %.0f%%" % (d["msgs_per_sec"], d["p50_us"], d["p99_us"], d["client_cpu_pct"]))' "$pre.client.json")${scpu:+  server cpu $scpu%}${syscalls:+  syscalls $syscalls}"
    else
        log "$tag: FAIL: $note"
    fi
}

read -r -a SERVER_ARR <<<"$SERVERS"
for ((round = 1; round <= ROUNDS; round++)); do
    # Alternate the order every round so slow drift does not favour one server.
    order=("${SERVER_ARR[@]}")
    if ((round % 2 == 0)); then
        order=()
        for ((k = ${#SERVER_ARR[@]} - 1; k >= 0; k--)); do order+=("${SERVER_ARR[k]}"); done
    fi
    for c in $CASES; do
        for server in "${order[@]}"; do
            run_case "$round" "${c%x*}" "${c#*x}" "$server"
        done
    done
done

# ---------------------------------------------------------------- summary
MACHINE="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) CPUs$(lscpu | sed -n 's/^Hypervisor vendor:[[:space:]]*/ (VM: /p' | sed 's/$/)/' | head -1), Linux $(uname -r)"
CPU_FLAGS=$(grep -m1 -o -w -E 'avx2|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' ' || true)
RUSTC=$(rustc --version 2>/dev/null || echo unknown)
RINGWIRE_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null | head -1) ]]; then RINGWIRE_REV="$RINGWIRE_REV (dirty tree)"; fi
PERF_VER=$(if [[ $COUNTER == perf ]]; then perf --version 2>/dev/null; elif [[ $COUNTER == strace ]]; then strace -V 2>/dev/null | head -1; fi || true)
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
export MACHINE CPU_FLAGS LOAD_START LOAD_END RUSTC RINGWIRE_REV PERF_VER COUNTER COUNTER_NOTE RUNS RAW OUT_BASE \
    SECS WARMUP ROUNDS OPCODE SERVER_CPU CLIENT_CPU COMMANDS SERVERS CASES SKIP_RINGWIRE STAMP CLK_TCK
export ROOT PEERS_LOCK=$ROOT/bench/peers/Cargo.lock
python3 - <<'PY'
import csv, json, os, statistics

env = os.environ
runs = list(csv.DictReader(open(env["RUNS"]), delimiter="\t"))

def lock_version(name):
    try:
        text = open(env["PEERS_LOCK"]).read()
    except OSError:
        return "?"
    found = []
    for block in text.split("[[package]]"):
        if f'\nname = "{name}"\n' in block:
            for line in block.splitlines():
                if line.startswith("version = "):
                    found.append(line.split('"')[1])
    if not found:
        return "?"
    return max(found, key=lambda v: tuple(int(x) if x.isdigit() else 0 for x in v.split(".")))

LABEL = {
    "ringwire-uring": ("ringwire", "uring"),
    "ringwire-epoll": ("ringwire", "epoll"),
    "fastwebsockets": ("fastwebsockets", "-"),
    "tokio-tungstenite": ("tokio-tungstenite", "-"),
}
servers = env["SERVERS"].split()
case_order = [f"ws-echo-{c}" for c in env["CASES"].split()]
clk_tck = float(env.get("CLK_TCK") or 100)

def med(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None

cases, rows = [], []
for case_name in case_order:
    for server in servers:
        rs = [r for r in runs if r["case"] == case_name and r["server"] == server]
        ok = [r for r in rs if r["status"] == "ok"]
        clients = [json.load(open(r["client_json"])) for r in ok]
        per_msg, cpu_us = [], []
        for r, c in zip(ok, clients):
            total = c.get("messages_total")
            if r["syscalls"] and total:
                per_msg.append(int(r["syscalls"]) / total)
            if r["server_cpu_ticks"] and total:
                cpu_us.append(int(r["server_cpu_ticks"]) / clk_tck * 1e6 / total)
        name, driver = LABEL[server]
        case = {
            "case": case_name,
            "server": name,
            "driver": driver,
            "msgs_per_sec": med([c["msgs_per_sec"] for c in clients]),
            "p50_us": med([c["p50_us"] for c in clients]),
            "p99_us": med([c["p99_us"] for c in clients]),
            "p999_us": med([c["p999_us"] for c in clients]),
            "syscalls_per_msg": med(per_msg),
            "server_cpu_us_per_msg": med(cpu_us),
        }
        cases.append(case)
        scpu = med([float(r["server_cpu_pct"]) for r in ok if r["server_cpu_pct"]])
        ccpu = med([c["client_cpu_pct"] for c in clients if c.get("client_cpu_pct", -1) >= 0])
        pings = sum(c.get("server_pings", 0) for c in clients)
        rows.append((case, server, [c["msgs_per_sec"] for c in clients], len(ok), len(rs),
                     [r["note"] for r in rs if r["status"] != "ok"], scpu, ccpu, pings))

summary = {"machine": env["MACHINE"], "cases": cases}
for path in (os.path.join(env["RAW"], "summary.json"), os.path.join(env["OUT_BASE"], "latest.json")):
    with open(path, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")

def fmt(x, nd=1):
    return "n/a" if x is None else f"{x:,.{nd}f}"

md = []
md.append(f"# WebSocket echo, side by side ({env['STAMP']})\n")
md.append(f"- machine: {env['MACHINE']}" + (f"; CPU has {env['CPU_FLAGS'].strip()}" if env.get("CPU_FLAGS", "").strip() else ""))
md.append(f"- toolchain: {env['RUSTC']}; ringwire rev {env['RINGWIRE_REV']}; "
          f"fastwebsockets {lock_version('fastwebsockets')} (hyper {lock_version('hyper')}), "
          f"tokio-tungstenite {lock_version('tokio-tungstenite')} (tungstenite {lock_version('tungstenite')}), "
          f"tokio {lock_version('tokio')}; client: mio {lock_version('mio')}, "
          f"hdrhistogram {lock_version('hdrhistogram')}; release builds for the generic x86-64 target "
          f"(no target-cpu=native; ringwire picks SSE2/AVX2 unmasking at run time)")
md.append(f"- method (uWebSockets benchmarks/load_test): N connections from one single-threaded client "
          f"(ws-echo-load, mio/epoll) pinned to CPU {env['CLIENT_CPU']}; all N do the opening handshake "
          f"first (no extension offered, so no permessage-deflate; ringwire also runs with "
          f"`--ws-compression false`), then each keeps exactly one masked {env['OPCODE']} message of S bytes "
          f"in flight and verifies every echo byte-exactly; one server thread pinned to CPU "
          f"{env['SERVER_CPU']}; {env['WARMUP']} s warm-up + {env['SECS']} s measured per run; "
          f"{env['ROUNDS']} round(s), servers alternated case by case (order reversed every other round); "
          f"a fresh server process per run; loopback, source address 127.0.0.1")
md.append("- figures: messages/s = echoes completed per second, median over rounds; p50/p99/p99.9 = median "
          "over rounds of each run's HDR percentile (µs, send of the frame to the last echo byte verified); "
          "syscalls/msg = server syscalls counted over the whole run (handshakes and warm-up included) ÷ "
          "echoes in that run (warm-up included); server CPU µs/msg = server user+system CPU time over the "
          "client's whole run ÷ the same echoes (holds even when the client is the bottleneck); server CPU % "
          "= that CPU time ÷ wall time (100 = one core saturated); client CPU % = the client's own share of "
          "one core while measuring")
md.append(f"- load average (1/5/15 min) at start: {env['LOAD_START']}; at end: {env['LOAD_END']}"
          " (other work on the machine skews the figures)")
md.append(f"- syscall counter: {env['COUNTER_NOTE']}" + (f" ({env['PERF_VER']})" if env.get("PERF_VER") else ""))
if env.get("SKIP_RINGWIRE") == "1":
    md.append("- ringwire skipped (SKIP_RINGWIRE=1)")
md.append("- caveat: client and server share one 2-core machine (and whatever else runs on it); "
          "compare servers within one table, not across machines")
raw = env["RAW"]
if raw.startswith(env["ROOT"] + "/"):
    raw = raw[len(env["ROOT"]) + 1:]
md.append(f"- raw outputs: `{raw}/` (server/client/counter output of every run, runs.tsv, commands.txt)\n")
md.append("| case | server | driver | messages/s (median) | per round | p50 µs | p99 µs | p99.9 µs | syscalls/msg | server CPU µs/msg | server CPU % | client CPU % | runs ok |")
md.append("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for case, server, per_round, nok, nall, notes, scpu, ccpu, pings in rows:
    drv = case["driver"] if case["driver"] != "-" else "current-thread tokio"
    md.append(f"| {case['case']} | {case['server']} | {drv} | {fmt(case['msgs_per_sec'], 0)} | "
              f"{', '.join(f'{x:,.0f}' for x in per_round) or '-'} | {fmt(case['p50_us'])} | "
              f"{fmt(case['p99_us'])} | {fmt(case['p999_us'])} | {fmt(case['syscalls_per_msg'], 3)} | "
              f"{fmt(case['server_cpu_us_per_msg'], 2)} | {fmt(scpu, 0)} | {fmt(ccpu, 0)} | {nok}/{nall} |")
pinged = [(c, s, p) for c, s, _, _, _, _, _, _, p in rows if p]
if pinged:
    md.append("\nServer pings answered by the client (heartbeat during the run): " +
              "; ".join(f"{c['case']} {s}: {p}" for c, s, p in pinged))
fails = [(c, s, n) for c, s, _, _, _, ns, _, _, _ in rows for n in ns]
if fails:
    md.append("\n## Failed runs\n")
    for c, s, n in fails:
        md.append(f"- {c['case']} {s}: {n}")
md.append("\n## Exact commands\n")
md.append("```")
md.append(open(env["COMMANDS"]).read().rstrip())
md.append("```")
if env["COUNTER"] == "perf":
    md.append("\nCounter, per run: `perf stat -e raw_syscalls:sys_enter -x, -o FILE -p SERVER_PID` "
              "(attached before the client starts, stopped with SIGINT after it exits).")
elif env["COUNTER"] == "strace":
    md.append("\nCounter, per run: `strace -c -f -p SERVER_PID -o FILE` (FALLBACK; slows the server).")
text = "\n".join(md) + "\n"
for path in (os.path.join(env["RAW"], "summary.md"), os.path.join(env["OUT_BASE"], "latest.md")):
    with open(path, "w") as f:
        f.write(text)
print(text)
PY

log "wrote $OUT_BASE/latest.md and $OUT_BASE/latest.json (raw: $RAW)"
if ((ANY_FAIL)); then
    log "some runs FAILED (see the table)"
    exit 1
fi
