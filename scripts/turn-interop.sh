#!/usr/bin/env bash
# STUN/TURN interop with coturn from Debian, both ways, on loopback only:
#   1. coturn's clients against `ringwire serve --stun`: turnutils_stunclient, and
#      turnutils_uclient (echoed by turnutils_peer) over channels, Send indications, TCP,
#      channel padding, DONT-FRAGMENT and client-to-client relaying; each run must report
#      "Total lost packets 0" with every message echoed.
#   2. our clients against coturn's turnserver: `ringwire stun-client` (UDP, TCP) and
#      `ringwire turn-client` (channel, Send indications, and a run longer than coturn's
#      stale-nonce time so a 438 is retried); each must print received: N/N.
# Prints one line per check and a summary line; exits non-zero unless every check passed.
#
# Environment: RINGWIRE_BIN (a built binary; default: build with cargo), CARGO_TARGET_DIR,
# UCLIENT_MSGS (messages per uclient client, default 50).
set -u

cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v turnutils_uclient >/dev/null || ! command -v turnserver >/dev/null; then
    echo "installing coturn"
    (apt-get install -y coturn >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y coturn >/dev/null; }) || {
        echo "turn-interop: cannot install coturn"; exit 2; }
fi

BIN=${RINGWIRE_BIN:-}
if [ -z "$BIN" ]; then
    cargo build -q -p ringwire --bin ringwire || { echo "turn-interop: build failed"; exit 2; }
    BIN=${CARGO_TARGET_DIR:-target}/debug/ringwire
fi

# Ports free for both UDP and TCP on 127.0.0.1.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
out = []
while len(out) < int(sys.argv[1]):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
        if p not in out: out.append(p)
    except OSError:
        pass
    u.close(); t.close()
print(" ".join(map(str, out)))
EOF
}
read -r PORT PORT1 PEER_PORT CPORT TLS_PORT <<<"$(free_ports 5)"
MSGS=${UCLIENT_MSGS:-50}
PASS=0
FAIL=0
check() { # name, ok(0/1), detail
    if [ "$2" = 0 ]; then PASS=$((PASS + 1)); echo "PASS $1: $3"; else FAIL=$((FAIL + 1)); echo "FAIL $1: $3"; fi
}

wait_line() { # file, pattern
    for _ in $(seq 1 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}

# ---- 1. coturn's clients against ringwire ------------------------------------------------
# --turn-rfc5766-channels: turnutils_uclient picks channel numbers in RFC 5766's
# 0x4000-0x7FFF; our default is RFC 8656's 0x4000-0x4FFF.
# --stun-tls: TURN over TLS (TCP) with the development certificate (uclient does not verify).
"$BIN" serve --stun "127.0.0.1:$PORT" --turn-user u:p --realm r --turn-allow-loopback-peers \
    --turn-rfc5766-channels --turn-relay-ports 50000-50999 --threads 2 \
    --stun-tls "127.0.0.1:$TLS_PORT" --tls-self-signed \
    >"$WORK/ringwire.out" 2>"$WORK/ringwire.err" &
PIDS+=($!)
if ! wait_line "$WORK/ringwire.out" "listening on 127.0.0.1:$PORT"; then
    echo "turn-interop: ringwire did not start"; cat "$WORK/ringwire.err"; exit 1
fi
echo "ringwire: $(head -1 "$WORK/ringwire.out")"

out=$(timeout 30 turnutils_stunclient -p "$PORT" 127.0.0.1 2>&1)
line=$(grep -m1 "UDP reflexive addr" <<<"$out")
[[ "$line" == *"reflexive addr: 127.0.0.1:"* ]]
check "turnutils_stunclient -> ringwire" $? "${line#*: : }"

turnutils_peer -L 127.0.0.1 -p "$PEER_PORT" >"$WORK/peer.log" 2>&1 &
PIDS+=($!)
sleep 0.3

UPORT=$PORT
uclient() { # name, extra flags...
    local name=$1; shift
    local out lost sent recv
    out=$(timeout 120 turnutils_uclient "$@" -p "$UPORT" -u u -w p -e 127.0.0.1 -r "$PEER_PORT" \
        -n "$MSGS" -m 4 -l 200 127.0.0.1 2>&1)
    lost=$(grep -m1 -o "Total lost packets [0-9]* ([0-9.]*%)" <<<"$out")
    sent=$(grep -o "tot_send_msgs=[0-9]*, tot_recv_msgs=[0-9]*" <<<"$out" | tail -1)
    local ok=1
    if [[ "$lost" == "Total lost packets 0 ("* ]] && [ -n "$sent" ]; then
        local s=${sent#tot_send_msgs=}; s=${s%%,*}
        local r=${sent##*tot_recv_msgs=}
        [ "$s" -gt 0 ] && [ "$s" = "$r" ] && ok=0
    fi
    check "turnutils_uclient $name -> ringwire" $ok "${lost:-no statistics}; ${sent:-}"
    [ $ok = 0 ] || grep -m3 -i "error" <<<"$out"
}
# -c: no RTCP allocations (those come next, on one core).
uclient "channels" -c
uclient "send-indications (-s)" -c -s
uclient "tcp (-t)" -c -t
uclient "tcp send-indications (-t -s)" -c -t -s
UPORT=$TLS_PORT uclient "tls (-t -S)" -c -t -S
uclient "channel padding (-D)" -c -D
uclient "dont-fragment (-g)" -c -g
uclient "client-to-client (-y)" -c -y

# Without -c, uclient makes RTP/RTCP allocation pairs: EVEN-PORT with the R bit, then an
# Allocate with the RESERVATION-TOKEN from another client port. A reservation lives on one
# core, so this runs against a one-thread server.
"$BIN" serve --stun "127.0.0.1:$PORT1" --turn-user u:p --realm r --turn-allow-loopback-peers \
    --turn-rfc5766-channels --turn-relay-ports 51000-51999 --threads 1 \
    >"$WORK/ringwire1.out" 2>"$WORK/ringwire1.err" &
PIDS+=($!)
if wait_line "$WORK/ringwire1.out" "listening on 127.0.0.1:$PORT1"; then
    UPORT=$PORT1
    uclient "rtp/rtcp pairs (even-port, reservation-token; 1 thread)"
    UPORT=$PORT
else
    check "ringwire --threads 1 start" 1 "$(tail -2 "$WORK/ringwire1.err")"
fi

out=$("$BIN" stun-client "127.0.0.1:$PORT" 2>&1)
[[ "$out" == "mapped-address: 127.0.0.1:"* ]]
check "ringwire stun-client -> ringwire" $? "$out"
out=$("$BIN" turn-client --server "127.0.0.1:$PORT" --user u:p --realm r \
    --peer "127.0.0.1:$PEER_PORT" --count 200 --size 500 2>&1)
grep -q "^received: 200/200$" <<<"$out"
check "ringwire turn-client -> ringwire" $? "$(tr '\n' ' ' <<<"$out")"

# ---- 2. our clients against coturn's turnserver ------------------------------------------
turnserver -n -v --log-file=stdout --lt-cred-mech --user=u:p --realm=r --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 \
    --listening-port="$CPORT" --allow-loopback-peers --no-tls --no-dtls --no-cli \
    --min-port=49152 --max-port=49200 --stale-nonce=2 >"$WORK/coturn.log" 2>&1 &
PIDS+=($!)
ready=1
for _ in $(seq 1 50); do
    if "$BIN" stun-client --rto-ms 100 --max-transmissions 2 "127.0.0.1:$CPORT" >/dev/null 2>&1; then
        ready=0; break
    fi
    sleep 0.1
done
if [ $ready != 0 ]; then echo "turn-interop: coturn did not start"; tail -5 "$WORK/coturn.log"; exit 1; fi

out=$("$BIN" stun-client "127.0.0.1:$CPORT" 2>&1)
[[ "$out" == "mapped-address: 127.0.0.1:"* ]]
check "ringwire stun-client -> coturn (udp)" $? "$out"
out=$("$BIN" stun-client --tcp "127.0.0.1:$CPORT" 2>&1)
[[ "$out" == "mapped-address: 127.0.0.1:"* ]]
check "ringwire stun-client -> coturn (tcp)" $? "$out"

turn_client() { # name, count, extra flags...
    local name=$1 n=$2; shift 2
    local out
    out=$(timeout 120 "$BIN" turn-client --server "127.0.0.1:$CPORT" --user u:p --realm r \
        --peer "127.0.0.1:$PEER_PORT" --count "$n" --size 200 "$@" 2>&1)
    local rc=$?
    local relayed
    relayed=$(grep -o "relayed-address: 127.0.0.1:[0-9]*" <<<"$out")
    local port=${relayed##*:}
    local ok=1
    if [ $rc = 0 ] && grep -q "^received: $n/$n$" <<<"$out" && [ -n "$port" ] \
        && [ "$port" -ge 49152 ] && [ "$port" -le 49200 ]; then ok=0; fi
    check "ringwire turn-client $name -> coturn" $ok "$(grep -v '^channel' <<<"$out" | tr '\n' ' ')"
}
turn_client "channel" 500
turn_client "send-indications" 200 --send-indication
# 3 s of traffic against --stale-nonce=2: the final Refresh gets 438 and is retried.
turn_client "stale-nonce retry" 30 --interval-ms 100
wait_line "$WORK/coturn.log" "error 438"
check "coturn answered 438 Stale Nonce and the retry succeeded" $? \
    "$(grep -m1 -o "error 438.*" "$WORK/coturn.log")"

TOTAL=$((PASS + FAIL))
echo "turn-interop: $PASS/$TOTAL checks passed"
[ $FAIL = 0 ]
