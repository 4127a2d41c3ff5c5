#!/usr/bin/env bash
# Fails if a protocol crate depends on the engine, io-uring, libc, mio or tokio (DESIGN.md layers),
# or if the runtime depends on a protocol crate.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
for toml in protocols/*/Cargo.toml; do
  [ -f "$toml" ] || continue
  pkg=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$toml" | head -1)
  tree=$(cargo tree -p "$pkg" -e normal --prefix none 2>/dev/null | awk '{print $1}' | sort -u)
  for bad in ringwire-runtime ringwire io-uring libc mio tokio; do
    if echo "$tree" | grep -qx "$bad"; then
      echo "layer violation: $pkg depends on $bad"; fail=1
    fi
  done
done
rt=$(cargo tree -p ringwire-runtime -e normal --prefix none | awk '{print $1}' | sort -u)
if echo "$rt" | grep -q '^ringwire-'; then
  if echo "$rt" | grep '^ringwire-' | grep -vqx 'ringwire-runtime'; then
    echo "layer violation: ringwire-runtime depends on a protocol crate"; fail=1
  fi
fi
[ $fail -eq 0 ] && echo "layers ok"
exit $fail
