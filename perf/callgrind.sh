#!/usr/bin/env bash
# Instructions per echoed WebSocket message of `ringwire serve`, counted by
# callgrind: stable on a noisy machine, unlike time (perf/README.md).
#
# For each case CONNSxBYTES the release server runs under
# `valgrind --tool=callgrind` (one thread, epoll driver: valgrind does not model
# io_uring's shared rings) twice, driven by `ringwire-load ws-echo --count N`
# with N = LOW and N = HIGH echoes per connection. Startup, handshakes and
# shutdown cost the same in both runs, so
#     instructions/msg = (Ir(HIGH) - Ir(LOW)) / (CONNS * (HIGH - LOW)).
#
#   perf/callgrind.sh              print the figures (and write RAW_DIR/instructions.json)
#   perf/callgrind.sh --compare    also fail (exit 1) if a case grew more than
#                                  TOLERANCE (10%) over perf/baseline/instructions.json
#   perf/callgrind.sh --update     write the figures to perf/baseline/instructions.json
#
# Environment: CASES ["1x20 1x16384 10x512"], LOW [200], HIGH [1200],
#   TOLERANCE [0.10], SKIP_BUILD [0], CARGO_TARGET_DIR [target],
#   RAW_DIR [bench/results/callgrind/<stamp>, git-ignored], VALGRIND [valgrind].
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=print
case ${1:-} in
--compare) MODE=compare ;;
--update) MODE=update ;;
"") ;;
*) echo "usage: $0 [--compare|--update]" >&2; exit 2 ;;
esac
CASES=${CASES:-"1x20 1x16384 10x512"}
LOW=${LOW:-200}
HIGH=${HIGH:-1200}
TOLERANCE=${TOLERANCE:-0.10}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RAW=${RAW_DIR:-$ROOT/bench/results/callgrind/$(date -u +%Y%m%dT%H%M%SZ)}
BASELINE=$ROOT/perf/baseline/instructions.json
VALGRIND=${VALGRIND:-valgrind}
log() { printf '[callgrind] %s\n' "$*" >&2; }

command -v "$VALGRIND" >/dev/null || { log "valgrind missing (apt-get install -y valgrind)"; exit 2; }
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release -p ringwire -p ringwire-load)
fi
RW=$TARGET/release/ringwire
LOAD=$TARGET/release/ringwire-load
mkdir -p "$RAW"

SPID=""
cleanup() { [[ -z $SPID ]] || kill -KILL "$SPID" 2>/dev/null || true; }
trap cleanup EXIT

port() { echo $((30000 + RANDOM % 2000)); }

# Ir of one server run with `count` echoes per connection.
run_once() { # conns size count tag -> prints Ir
    local conns=$1 size=$2 count=$3 tag=$4 p i
    p=$(port)
    local out=$RAW/$tag.callgrind
    RINGWIRE_DRIVER=epoll "$VALGRIND" --tool=callgrind --callgrind-out-file="$out" \
        "$RW" serve --threads 1 --driver epoll --ws-compression false --bind "127.0.0.1:$p" \
        >"$RAW/$tag.server.out" 2>"$RAW/$tag.server.err" &
    SPID=$!
    for i in $(seq 600); do
        grep -q "listening on 127.0.0.1:$p " "$RAW/$tag.server.out" 2>/dev/null && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    grep -q "listening on 127.0.0.1:$p " "$RAW/$tag.server.out" ||
        { log "$tag: server not ready: $(tail -c 400 "$RAW/$tag.server.err")"; exit 1; }
    "$LOAD" ws-echo --addr "127.0.0.1:$p" --conns "$conns" --size "$size" --count "$count" \
        --secs 300 --json >"$RAW/$tag.client.json" 2>"$RAW/$tag.client.err" ||
        { log "$tag: client failed: $(cat "$RAW/$tag.client.err")"; exit 1; }
    sleep 0.3
    kill -TERM "$SPID"
    for i in $(seq 300); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=""
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

echo "{" >"$RAW/instructions.json.tmp"
first=1
for c in $CASES; do
    [[ $c =~ ^([0-9]+)x([0-9]+)$ ]] || { log "bad case $c"; exit 2; }
    conns=${BASH_REMATCH[1]} size=${BASH_REMATCH[2]}
    lo=$(run_once "$conns" "$size" "$LOW" "ws-echo-$c-low")
    hi=$(run_once "$conns" "$size" "$HIGH" "ws-echo-$c-high")
    per=$(awk -v a="$lo" -v b="$hi" -v n="$conns" -v l="$LOW" -v h="$HIGH" \
        'BEGIN { printf "%.0f", (b - a) / (n * (h - l)) }')
    log "ws-echo-$c: Ir $lo (${LOW}/conn) -> $hi (${HIGH}/conn): $per instructions per echoed message"
    ((first)) || echo "," >>"$RAW/instructions.json.tmp"
    first=0
    printf '  "ws-echo-%s": {"instructions_per_msg": %s, "ir_low": %s, "ir_high": %s}' \
        "$c" "$per" "$lo" "$hi" >>"$RAW/instructions.json.tmp"
done
printf '\n}\n' >>"$RAW/instructions.json.tmp"

export RAW LOW HIGH BASELINE MODE TOLERANCE
export VG_VER=$("$VALGRIND" --version) RUSTC=$(rustc --version)
export REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
python3 - <<'PY'
import json, os, sys
env = os.environ
cases = json.load(open(os.path.join(env["RAW"], "instructions.json.tmp")))
doc = {
    "what": "instructions per echoed WebSocket message of `ringwire serve --threads 1 --driver epoll "
            "--ws-compression false` under callgrind: (Ir(HIGH) - Ir(LOW)) / (conns * (HIGH - LOW)), "
            "binary messages from `ringwire-load ws-echo --count N` (perf/callgrind.sh)",
    "low": int(env["LOW"]), "high": int(env["HIGH"]),
    "valgrind": env["VG_VER"], "rustc": env["RUSTC"], "rev": env["REV"],
    "cases": cases,
}
with open(os.path.join(env["RAW"], "instructions.json"), "w") as f:
    json.dump(doc, f, indent=2); f.write("\n")
if env["MODE"] == "update":
    with open(env["BASELINE"], "w") as f:
        json.dump(doc, f, indent=2); f.write("\n")
    print(f"wrote {env['BASELINE']}")
elif env["MODE"] == "compare":
    base = json.load(open(env["BASELINE"]))["cases"]
    tol = float(env["TOLERANCE"])
    bad = 0
    for name, v in cases.items():
        b = base.get(name)
        if b is None:
            print(f"{name}: {v['instructions_per_msg']} instructions/msg (no baseline)")
            continue
        ratio = v["instructions_per_msg"] / b["instructions_per_msg"]
        verdict = "OK" if ratio <= 1 + tol else f"FAIL: more than {tol:.0%} over the baseline"
        bad += ratio > 1 + tol
        print(f"{name}: {v['instructions_per_msg']} instructions/msg, baseline "
              f"{b['instructions_per_msg']} ({ratio - 1:+.1%}) {verdict}")
    sys.exit(1 if bad else 0)
else:
    for name, v in cases.items():
        print(f"{name}: {v['instructions_per_msg']} instructions/msg")
PY
