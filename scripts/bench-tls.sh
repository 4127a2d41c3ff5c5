#!/usr/bin/env bash
# TLS benchmark (issue 7's closing note, bench/README.md): TLS handshakes/s per
# core, full and resumed, and wss echo messages/s beside plain ws, for ringwire
# (uring and epoll drivers) and a tokio-rustls + tokio-tungstenite server
# (bench/peers/tls-tungstenite-echo; its plain twin is tungstenite-echo), all
# driven by the same client, ringwire-load (bench/load: rustls on ringwire-runtime,
# io_uring when its probe passes; each client JSON names its driver).
#
# One server thread under `taskset -c $SERVER_CPU`, the client under
# `taskset -c $CLIENT_CPU`, a fresh server per run, servers alternated case by
# case (order reversed every other round), medians over ROUNDS. The server's
# CPU time (utime+stime from /proc over exactly the measured window, through
# ringwire-load --server-pid) gives server CPU µs per handshake / message and so
# handshakes/s per core (1e6 / that), which holds when the client is the
# bottleneck (a TLS client does about as much crypto per handshake as the
# server, and both share this machine).
#
# Certificates: a P-256 CA and a leaf for localhost/127.0.0.1 made with openssl
# in the raw directory (git-ignored); every server gets the same files, the
# client verifies against the CA (--tls-ca, SNI localhost).
#
# Cases (CASES, default all of these):
#   storm-plain-N     N slots connect + WebSocket upgrade + RST, again and again
#                     (the baseline without TLS)
#   storm-full-N      the same over TLS, every handshake full (client resumption off)
#   storm-resumed-N   the same, one client session store for the run (--resume);
#                     ringwire-load counts full vs resumed handshakes and fails
#                     if none resumed
#   ws-echo-CxB       plain WebSocket echo, C connections, B-byte messages,
#                     closed loop (one in flight per connection)
#   wss-echo-CxB      the same over TLS
#
# Environment (defaults in brackets):
#   SECS [5] WARMUP [1] ROUNDS [5]
#   CASES ["storm-plain-32 storm-full-32 storm-resumed-32 ws-echo-100x512 wss-echo-100x512"]
#   SERVERS   subset of: ringwire-uring ringwire-epoll tokio-tungstenite   [all]
#   TLS12 [0]                 1 = TLS 1.2 instead of 1.3 for every TLS case
#   SKIP_BUILD [0]            1 = use the binaries already built
#   SERVER_CPU [0] CLIENT_CPU [1]
#   RINGWIRE_TARGET_DIR [$CARGO_TARGET_DIR or target]  PEERS_TARGET_DIR [bench/peers/target]
#   OUT_JSON [bench/results/tls/latest.json]  OUT_MD [bench/results/tls/latest.md]
#   RAW_DIR  [bench/results/tls/<UTC stamp>]  (git-ignored)
#   PORT_BASE [random in 20000-29999]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${SECS:-5}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-5}
CASES=${CASES:-"storm-plain-32 storm-full-32 storm-resumed-32 ws-echo-100x512 wss-echo-100x512"}
ALL_SERVERS="ringwire-uring ringwire-epoll tokio-tungstenite"
SERVERS=${SERVERS:-$ALL_SERVERS}
TLS12=${TLS12:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
RINGWIRE_TARGET=${RINGWIRE_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}}
PEERS_TARGET=${PEERS_TARGET_DIR:-$ROOT/bench/peers/target}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW=${RAW_DIR:-$ROOT/bench/results/tls/$STAMP}
OUT_JSON=${OUT_JSON:-$ROOT/bench/results/tls/latest.json}
OUT_MD=${OUT_MD:-$ROOT/bench/results/tls/latest.md}
PORT_NEXT=${PORT_BASE:-$((20000 + RANDOM % 10000))}

log() { printf '[bench-tls] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

[[ $SECS =~ ^[0-9]+([.][0-9]+)?$ && $WARMUP =~ ^[0-9]+([.][0-9]+)?$ ]] || die "SECS and WARMUP must be numbers"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be an integer >= 1"
[[ $TLS12 == 0 || $TLS12 == 1 ]] || die "TLS12 must be 0 or 1"
for c in $CASES; do
    [[ $c =~ ^storm-(plain|full|resumed)-[0-9]+$ || $c =~ ^wss?-echo-[0-9]+x[0-9]+$ ]] ||
        die "CASES: '$c' is not storm-{plain,full,resumed}-N or {ws,wss}-echo-CxB"
done
for s in $SERVERS; do
    [[ " $ALL_SERVERS " == *" $s "* ]] || die "unknown server '$s' (known: $ALL_SERVERS)"
done
for tool in taskset ss python3 cargo openssl; do
    command -v "$tool" >/dev/null || die "'$tool' is required"
done
(($(nproc) >= 2)) || die "needs at least 2 CPUs (server and client are pinned apart)"

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
            -p tungstenite-echo -p tls-tungstenite-echo)
    fi
fi
[[ -x $LOAD_BIN ]] || die "$LOAD_BIN missing"
((need_ringwire == 0)) || [[ -x $RINGWIRE_BIN ]] || die "$RINGWIRE_BIN missing"

# ------------------------------------------------------------ certificates
mkdir -p "$RAW/certs"
CA=$RAW/certs/ca.pem CERT=$RAW/certs/cert.pem KEY=$RAW/certs/key.pem
(
    cd "$RAW/certs"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -keyout ca.key -out ca.pem -subj /CN=ringwire-bench-ca
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout key.pem -out leaf.csr -subj /CN=localhost
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >leaf.ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
        -extfile leaf.ext -out cert.pem
) >"$RAW/certs/openssl.log" 2>&1 || die "openssl failed: $(tail -3 "$RAW/certs/openssl.log")"

RUNS=$RAW/runs.tsv
COMMANDS=$RAW/commands.txt
printf 'round\tcase\tserver\tstatus\tclient_json\tnote\n' >"$RUNS"
: >"$COMMANDS"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ANY_FAIL=0

server_cmd() { # server port tls(0|1) -> SERVER_ARGV, WANT_DRIVER
    local s=$1 port=$2 tls=$3
    case $s in
    ringwire-uring | ringwire-epoll)
        WANT_DRIVER=${s#ringwire-}
        SERVER_ARGV=("$RINGWIRE_BIN" serve --threads 1 --driver "$WANT_DRIVER" --ws-compression false)
        if ((tls)); then
            alloc_port
            SERVER_ARGV+=(--bind "127.0.0.1:$PORT" --bind-tls "127.0.0.1:$port" --tls-cert "$CERT" --tls-key "$KEY")
        else
            SERVER_ARGV+=(--bind "127.0.0.1:$port")
        fi
        ;;
    tokio-tungstenite)
        WANT_DRIVER=-
        if ((tls)); then
            SERVER_ARGV=("$PEERS_BIN/tls-tungstenite-echo" --addr "127.0.0.1:$port" --cert "$CERT" --key "$KEY")
        else
            SERVER_ARGV=("$PEERS_BIN/tungstenite-echo" --addr "127.0.0.1:$port")
        fi
        ;;
    esac
}

run_case() { # round case server
    local round=$1 case_name=$2 server=$3
    local tls=1 client_args=()
    case $case_name in
    storm-plain-*) tls=0 client_args=(storm --conns "${case_name##*-}") ;;
    storm-full-*) client_args=(storm --conns "${case_name##*-}") ;;
    storm-resumed-*) client_args=(storm --conns "${case_name##*-}" --resume) ;;
    ws-echo-* | wss-echo-*)
        [[ $case_name == ws-* ]] && tls=0
        local cs=${case_name#*-echo-}
        client_args=(ws-echo --conns "${cs%x*}" --size "${cs#*x}")
        ;;
    esac
    if ((tls)); then
        client_args+=(--tls --tls-ca "$CA" --tls-name localhost)
        ((TLS12 == 0)) || client_args+=(--tls12)
    fi
    local tag="r$round-$case_name-$server" pre
    pre=$RAW/$tag
    alloc_port
    local port=$PORT
    server_cmd "$server" "$port" "$tls"
    taskset -c "$SERVER_CPU" "${SERVER_ARGV[@]}" >"$pre.server.out" 2>"$pre.server.err" &
    local spid=$! status=ok note="" i
    PIDS+=("$spid")
    local client=("$LOAD_BIN" "${client_args[@]}" --addr "127.0.0.1:$port" --secs "$SECS"
        --warmup "$WARMUP" --server-pid "$spid" --json)
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
    fi
    stop_pid "$spid"
    [[ $status == ok ]] || ANY_FAIL=1
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$case_name" "$server" "$status" "$pre.client.json" "$note" >>"$RUNS"
    if [[ $status == ok ]]; then
        log "$tag: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.0f/s  p50 %.1f us  p99 %.1f us  server %s us each  client cpu %s%%%s" % (d["msgs_per_sec"], d["p50_us"], d["p99_us"], d["server_cpu_us_per_msg"], d["client_cpu_pct"], ("  tls %s full %s resumed %s" % (d["tls_version"], d["tls_full"], d["tls_resumed"])) if d["tls"] else ""))' "$pre.client.json")"
    else
        log "$tag: FAIL: $note"
    fi
}

for ((round = 1; round <= ROUNDS; round++)); do
    for c in $CASES; do
        read -r -a order <<<"$SERVERS"
        if ((round % 2 == 0)); then
            rev=()
            for ((k = ${#order[@]} - 1; k >= 0; k--)); do rev+=("${order[k]}"); done
            order=("${rev[@]}")
        fi
        for s in "${order[@]}"; do run_case "$round" "$c" "$s"; done
    done
done

# ------------------------------------------------------------------ summary
lockver() { # package version from a Cargo.lock
    awk -v n="$2" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$1" 2>/dev/null
}
export MACHINE="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) CPUs$(lscpu | sed -n 's/^Hypervisor vendor:[[:space:]]*/ (VM: /p' | sed 's/$/)/' | head -1)"
export KERNEL="Linux $(uname -r)"
export RUSTC=$(rustc --version 2>/dev/null || echo unknown)
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
[[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null | head -1) ]] || REV="$REV (dirty tree)"
PL=$ROOT/bench/peers/Cargo.lock ML=$ROOT/Cargo.lock
export VERSIONS="ringwire $REV (rustls $(lockver "$ML" rustls), ring $(lockver "$ML" ring)); peer: tokio-rustls $(lockver "$PL" tokio-rustls) (rustls $(lockver "$PL" rustls), ring $(lockver "$PL" ring)), tokio-tungstenite $(lockver "$PL" tokio-tungstenite), tokio $(lockver "$PL" tokio); client: ringwire-load on ringwire-runtime (same revision), driver auto (rustls $(lockver "$ML" rustls))"
export LOAD_START LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg) RUNS RAW COMMANDS OUT_JSON OUT_MD STAMP ROOT
export SECS WARMUP ROUNDS SERVER_CPU CLIENT_CPU TLS12
export SETTINGS="SECS=$SECS WARMUP=$WARMUP ROUNDS=$ROUNDS TLS12=$TLS12 CASES=\"$CASES\" SERVERS=\"$SERVERS\""
python3 - <<'PY'
import csv, json, os, statistics

env = os.environ
runs = list(csv.DictReader(open(env["RUNS"]), delimiter="\t"))

def med(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None

def who(server, tls):
    if server.startswith("ringwire-"):
        return "ringwire", server[len("ringwire-"):]
    return ("tokio-rustls+tokio-tungstenite" if tls else "tokio-tungstenite"), "-"

order = []
for r in runs:
    k = (r["case"], r["server"])
    if k not in order:
        order.append(k)
cases = []
for case, server in order:
    rs = [r for r in runs if r["case"] == case and r["server"] == server]
    ok = [r for r in rs if r["status"] == "ok"]
    cl = [json.load(open(r["client_json"])) for r in ok]
    tls = not (case.startswith("storm-plain") or case.startswith("ws-"))
    name, driver = who(server, tls)
    cpu = med([c.get("server_cpu_us_per_msg") for c in cl])
    row = {
        "case": case, "server": name, "driver": driver, "tls": tls,
        "tls_version": cl[0].get("tls_version") if cl and tls else None,
        "tls_suite": cl[0].get("tls_suite") if cl and tls else None,
        "tls_group": cl[0].get("tls_group") if cl and tls else None,
        "msgs_per_sec": med([c["msgs_per_sec"] for c in cl]),
        "per_round": [c["msgs_per_sec"] for c in cl],
        "p50_us": med([c["p50_us"] for c in cl]),
        "p99_us": med([c["p99_us"] for c in cl]),
        "p999_us": med([c["p999_us"] for c in cl]),
        "server_cpu_us_per_msg": cpu,
        "per_core_per_sec": round(1e6 / cpu, 1) if cpu else None,
        "client_cpu_us_per_msg": med([c.get("client_cpu_us_per_msg") for c in cl]),
        "server_cpu_pct": med([c.get("server_cpu_pct") for c in cl]),
        "client_cpu_pct": med([c.get("client_cpu_pct") for c in cl]),
        "tls_full": sum(c.get("tls_full", 0) for c in cl) if tls else None,
        "tls_resumed": sum(c.get("tls_resumed", 0) for c in cl) if tls else None,
        "runs_ok": len(ok), "runs": len(rs),
        "failures": [r["note"] for r in rs if r["status"] != "ok"],
    }
    cases.append(row)

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
tv = next((c["tls_version"] for c in cases if c["tls_version"]), "?")
ts = next((f'{c["tls_suite"]}, {c["tls_group"]}' for c in cases if c["tls_suite"]), "?")
md = [f"# TLS benchmark ({env['STAMP']})", "",
      f"- machine: {env['MACHINE']}", f"- kernel: {env['KERNEL']}",
      f"- toolchain: {env['RUSTC']}; release builds for generic x86-64 (no target-cpu=native)",
      f"- versions: {env['VERSIONS']}",
      f"- settings: {env['SETTINGS']}",
      f"- TLS: {tv}, {ts}; P-256 ECDSA leaf certificate from a local CA, verified by the client "
      "(SNI localhost); both servers: rustls ring provider, TLS 1.3 + 1.2, ALPN http/1.1, "
      "session cache 4096, ring Ticketer.",
      f"- load average (1/5/15 min) at start: {env['LOAD_START']}; at end: {env['LOAD_END']}",
      f"- method: one server thread under `taskset -c {env['SERVER_CPU']}`, ringwire-load (one thread) "
      f"under `taskset -c {env['CLIENT_CPU']}`; {env['WARMUP']} s warm-up, {env['SECS']} s measured; "
      "servers alternated case by case, order reversed every other round; a fresh server per run; "
      f"medians over {env['ROUNDS']} round(s). Storm: each slot connects, does the TLS handshake (not "
      "for storm-plain) and the WebSocket upgrade, then closes with RST; a handshake counts when the "
      "101 is verified. storm-full: client resumption disabled; storm-resumed: one client session "
      "store for the run; the client counts rustls's handshake_kind() (full/resumed columns, summed "
      "over rounds). Echo: closed loop, one message in flight per connection, every echo verified.",
      "- server CPU µs: the server's utime+stime (/proc/PID/stat) over exactly the measured window "
      "÷ handshakes (or messages) in it; **per core/s = 1e6 ÷ that**, the figure that holds when the "
      "client, which does as much crypto per handshake as the server, is the bottleneck.",
      "- caveat: client and server share one machine; compare servers within one table.",
      f"- raw output: `{raw}/` (server/client output of every run, runs.tsv, commands.txt, certs)", "",
      "## Handshakes (connect + TLS + WebSocket upgrade)", "",
      "| case | server | driver | handshakes/s (median) | per round | per core/s | server CPU µs/handshake | client CPU µs | p50 µs | p99 µs | full | resumed | runs ok |",
      "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
for r in cases:
    if r["case"].startswith("storm-"):
        md.append(f"| {r['case']} | {r['server']} | {r['driver']} | {fmt(r['msgs_per_sec'], 0)} | "
                  f"{', '.join(f'{x:,.0f}' for x in r['per_round']) or '-'} | {fmt(r['per_core_per_sec'], 0)} | "
                  f"{fmt(r['server_cpu_us_per_msg'])} | {fmt(r['client_cpu_us_per_msg'])} | {fmt(r['p50_us'])} | "
                  f"{fmt(r['p99_us'])} | {r['tls_full'] if r['tls'] else '-'} | "
                  f"{r['tls_resumed'] if r['tls'] else '-'} | {r['runs_ok']}/{r['runs']} |")
md += ["", "## Echo: wss beside plain ws", "",
       "| case | server | driver | msgs/s (median) | per round | server CPU µs/msg | per core/s | client CPU µs/msg | p50 µs | p99 µs | p99.9 µs | server CPU % | runs ok |",
       "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
for r in cases:
    if not r["case"].startswith("storm-"):
        md.append(f"| {r['case']} | {r['server']} | {r['driver']} | {fmt(r['msgs_per_sec'], 0)} | "
                  f"{', '.join(f'{x:,.0f}' for x in r['per_round']) or '-'} | {fmt(r['server_cpu_us_per_msg'], 2)} | "
                  f"{fmt(r['per_core_per_sec'], 0)} | {fmt(r['client_cpu_us_per_msg'], 2)} | {fmt(r['p50_us'])} | "
                  f"{fmt(r['p99_us'])} | {fmt(r['p999_us'])} | {fmt(r['server_cpu_pct'], 0)} | {r['runs_ok']}/{r['runs']} |")
# wss ÷ ws per server and driver, for every echo size measured both ways
ratio = []
for r in cases:
    if r["case"].startswith("wss-echo-"):
        plain = next((p for p in cases if p["case"] == r["case"][1:] and p["driver"] == r["driver"]
                      and (p["server"] == r["server"] or r["server"].endswith("+" + p["server"]))), None)
        if plain and plain["msgs_per_sec"] and r["msgs_per_sec"]:
            cpu = (r["server_cpu_us_per_msg"] / plain["server_cpu_us_per_msg"]
                   if r["server_cpu_us_per_msg"] and plain["server_cpu_us_per_msg"] else None)
            ratio.append(f"| {r['case'][9:]} | {r['server']} | {r['driver']} | "
                         f"{r['msgs_per_sec'] / plain['msgs_per_sec']:.2f} | {fmt(cpu, 2)} |")
if ratio:
    md += ["", "wss ÷ ws (same server and driver):", "",
           "| conns×bytes | server | driver | msgs/s ratio | server CPU µs/msg ratio |",
           "|---|---|---|---:|---:|"] + ratio
fails = [(r, n) for r in cases for n in r["failures"]]
if fails:
    md += ["", "## Failed runs", ""] + [f"- {r['case']} {r['server']} {r['driver']}: {n}" for r, n in fails]
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
