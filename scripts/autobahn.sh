#!/usr/bin/env bash
# Autobahn testsuite (fuzzingclient) against `ringwire serve`: exits non-zero unless every case
# has behavior OK / NON-STRICT / INFORMATIONAL and behaviorClose OK / INFORMATIONAL.
#
#   scripts/autobahn.sh                      all 517 cases, on both drivers
#   scripts/autobahn.sh --driver epoll       one driver
#   scripts/autobahn.sh --cases '1.*,2.*'    a subset (comma-separated patterns)
#
# Env: AUTOBAHN_DIR (install folder, default ~/.cache/ringwire-autobahn), RINGWIRE_BIN (skip the
# build), REPORTS (default reports/autobahn). Installs the suite from PyPI under Python 2.7
# (pyenv's 2.7.18, see shared/research/peer-tools.md).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRIVERS="uring epoll"
CASES='*'
TLS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --driver) DRIVERS="$2"; shift 2 ;;
    --cases) CASES="$2"; shift 2 ;;
    --full) CASES='*'; DRIVERS="uring epoll"; shift ;;
    --tls) TLS=1; shift ;;  # wss:// against --bind-tls with the self-signed certificate
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

DIR=${AUTOBAHN_DIR:-$HOME/.cache/ringwire-autobahn}
PY2="env PYENV_VERSION=2.7.18 python"
if [ ! -f "$DIR/wstest.py" ]; then
  echo "[autobahn] installing autobahntestsuite into $DIR"
  mkdir -p "$DIR"
  $PY2 -m pip install -q --disable-pip-version-check --target "$DIR" autobahntestsuite
  cat > "$DIR/wstest.py" <<PYEOF
import site, sys; site.addsitedir("$DIR")
from autobahntestsuite import wstest
sys.argv[0] = "wstest"; wstest.run()
PYEOF
fi

if [ -z "${RINGWIRE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -p ringwire -q)
  RINGWIRE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/ringwire"
fi
REPORTS=${REPORTS:-$ROOT/reports/autobahn}
mkdir -p "$REPORTS"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

status=0
for driver in $DRIVERS; do
  port=$(free_port)
  scheme=ws; tag=$driver
  [ "$TLS" = 1 ] && { scheme=wss; tag="$driver-tls"; }
  out="$REPORTS/$tag"
  rm -rf "$out"; mkdir -p "$out"
  # Category 9 sends 16 MiB messages; the limits sit just above that.
  if [ "$TLS" = 1 ]; then
    listen=(--bind "127.0.0.1:$(free_port)" --bind-tls "127.0.0.1:$port" --tls-self-signed)
  else
    listen=(--bind "127.0.0.1:$port")
  fi
  "$RINGWIRE_BIN" serve --threads 1 --driver "$driver" "${listen[@]}" \
      --ws-max-message $((64 << 20)) > "$out/server.out" 2> "$out/server.err" &
  srv=$!
  trap 'kill $srv 2>/dev/null || true' EXIT
  for _ in $(seq 100); do grep -q "listening on" "$out/server.out" 2>/dev/null && break; sleep 0.1; done
  grep -q "driver=$driver" "$out/server.out" || { echo "[autobahn] server did not start with driver=$driver"; cat "$out/server.err"; exit 1; }
  cases_json=$(python3 -c 'import json,sys; print(json.dumps([c.strip() for c in sys.argv[1].split(",")]))' "$CASES")
  cat > "$out/spec.json" <<JSON
{"outdir": "$out/html", "servers": [{"agent": "ringwire-$tag", "url": "$scheme://127.0.0.1:$port/echo"}],
 "cases": $cases_json, "exclude-cases": [], "exclude-agent-cases": {}}
JSON
  echo "[autobahn] driver=$driver cases=$CASES url=$scheme://127.0.0.1:$port"
  (cd "$out" && $PY2 "$DIR/wstest.py" -m fuzzingclient -s "$out/spec.json" > "$out/wstest.log" 2>&1) || true
  kill $srv 2>/dev/null || true; wait $srv 2>/dev/null || true
  trap - EXIT
  python3 - "$out/html/index.json" "$tag" <<'PY' || status=1
import json, sys
path, driver = sys.argv[1], sys.argv[2]
try:
    idx = json.load(open(path))
except Exception as e:
    print(f"autobahn server: 0/0 passed (driver={driver}): no report ({e})")
    sys.exit(1)
ok_b = {"OK", "NON-STRICT", "INFORMATIONAL"}
ok_c = {"OK", "INFORMATIONAL"}
total = passed = 0
failed = []
for agent, cases in idx.items():
    for case, r in cases.items():
        total += 1
        if r.get("behavior") in ok_b and r.get("behaviorClose") in ok_c:
            passed += 1
        else:
            failed.append((case, r.get("behavior"), r.get("behaviorClose")))
def key(c):
    return [int(x) for x in c[0].split(".")]
for c in sorted(failed, key=key)[:40]:
    print(f"  FAILED {c[0]}: behavior={c[1]} close={c[2]}")
print(f"autobahn server: {passed}/{total} passed (driver={driver})")
sys.exit(0 if total > 0 and passed == total else 1)
PY
done
exit $status
