#!/usr/bin/env bash
# demo.sh BIN — the six-site segment of the original inter-cloud setup on this
# one machine: six network namespaces (makuhari, sakura, idcf, bitisle, rise,
# starbed) on a routed underlay 192.0.2.<1..6> (rise behind a 1400-byte path),
# one vxswitch per site joining 10.11.129.0/24 (VNI 129, TAP vx129), every
# pair pinged and shown as a table, then everything removed (also on Ctrl-C).
#
# Environment:
#   DEMO_MODE=esp|plain   default esp (IKEv2 + ESP in UDP), falling back to
#                         plain with a message if the ESP mesh does not come up
#   DEMO_SUITE=...        ESP suite, default aes128gcm16
#   DEMO_KEEP=1           keep the segment up until Enter is pressed
set -euo pipefail

BIN=${1:-bin/vxswitch}
[ -x "$BIN" ] || { echo "usage: $0 path/to/vxswitch (not executable: $BIN)" >&2; exit 2; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
cd "$(dirname "$0")"
# shellcheck source=scripts/lib-netns.sh
source ./lib-netns.sh

SITES=(makuhari sakura idcf bitisle rise starbed)
declare -A MTU=([rise]=1400)
SUITE=${DEMO_SUITE:-aes128gcm16}
WANT_MODE=${DEMO_MODE:-}
command -v ping >/dev/null || nsl_die "ping (iputils-ping) not installed"

nsl_init vxdemo
PSK=$NSL_TMP/mesh.psk
(umask 077; head -c 32 /dev/urandom | base64 >"$PSK")

idx() { local i; for i in "${!SITES[@]}"; do [ "${SITES[$i]}" = "$1" ] && echo $((i + 1)); done; }
mtu_of() { echo "${MTU[$1]:-1500}"; }

echo "== underlay: core router and six sites (rise behind a 1400-byte path)"
nsl_router
for s in "${SITES[@]}"; do
  nsl_site "$s" "$(idx "$s")" "$(mtu_of "$s")"
done

# write_config SITE MODE: the site's TOML, as a user would write it.
write_config() {
  local s=$1 mode=$2 i p j pm
  i=$(idx "$s")
  {
    echo "# $s: one of six sites sharing 10.11.129.0/24"
    echo "[site]"
    echo "name    = \"$s\""
    echo "listen  = \"192.0.2.$i\""
    echo "vtep    = \"172.31.0.$i\""
    echo "control = \"$NSL_TMP/$s.sock\""
    echo
    echo "[[segment]]"
    echo "vni     = 129"
    echo "tap     = \"vx129\""
    echo "mtu     = 1500"
    echo "address = \"10.11.129.$i/24\""
    echo
    echo "[security]"
    echo "mode     = \"$mode\""
    if [ "$mode" = esp ]; then
      echo "suite    = \"$SUITE\""
      echo "psk_file = \"$PSK\""
    fi
    for p in "${SITES[@]}"; do
      [ "$p" = "$s" ] && continue
      j=$(idx "$p")
      pm=$(mtu_of "$s"); [ "$(mtu_of "$p")" -lt "$pm" ] && pm=$(mtu_of "$p")
      echo
      echo "[[peer]]"
      echo "name     = \"$p\""
      echo "endpoint = \"192.0.2.$j\""
      echo "vtep     = \"172.31.0.$j\""
      echo "mtu      = $pm"
    done
  } >"$NSL_TMP/$s.toml"
  chmod 600 "$NSL_TMP/$s.toml"
}

declare -A PID
start_mesh() {
  local mode=$1 s
  for s in "${SITES[@]}"; do write_config "$s" "$mode"; done
  if ! "$BIN" check -c "$NSL_TMP/${SITES[0]}.toml" >"$NSL_TMP/check.log" 2>&1; then
    echo "   vxswitch check rejects mode $mode: $(head -3 "$NSL_TMP/check.log")"
    return 1
  fi
  for s in "${SITES[@]}"; do
    nsl_bg "$s" "$NSL_TMP/$s.log" "$BIN" run -c "$NSL_TMP/$s.toml"
    PID[$s]=$NSL_LAST_PID
  done
  for s in "${SITES[@]}"; do
    if ! nsl_wait 10 site_up "$s"; then
      echo "   $s did not come up in $mode mode; its log:"
      tail -n 15 "$NSL_TMP/$s.log" | sed 's/^/     /'
      return 1
    fi
  done
  # The first packets wait for key exchange (ESP): every site reaches makuhari.
  for s in "${SITES[@]:1}"; do
    if ! nsl_wait 20 nsx "$s" ping -n -q -c 1 -W 1 10.11.129.1; then
      echo "   $s cannot reach makuhari over the segment in $mode mode"
      return 1
    fi
  done
}

# shellcheck disable=SC2317 # called through nsl_wait
site_up() {
  kill -0 "${PID[$1]}" 2>/dev/null || return 1
  nsx "$1" ip -br addr show vx129 | grep -q "10.11.129.$(idx "$1")/24"
}

stop_mesh() {
  local s
  for s in "${SITES[@]}"; do [ -n "${PID[$s]:-}" ] && nsl_stop "${PID[$s]}"; done
  PID=()
}

MODE=${WANT_MODE:-esp}
echo "== starting six vxswitch processes, mode $MODE$([ "$MODE" = esp ] && echo ", suite $SUITE")"
if ! start_mesh "$MODE"; then
  if [ -z "$WANT_MODE" ] && [ "$MODE" = esp ]; then
    echo "== ESP mode is not usable with this build yet; falling back to plain VXLAN (RFC 7348)"
    stop_mesh
    MODE=plain
    start_mesh plain || nsl_die "the segment did not come up in plain mode either (logs above)"
  else
    nsl_die "the segment did not come up in $MODE mode"
  fi
fi
echo "   up: $(for s in "${SITES[@]}"; do printf '%s(pid %s) ' "$s" "${PID[$s]}"; done)"

# ping_cell FILE COUNT: "ok 0.42ms", "loss 1/3" or "FAIL" from a ping summary.
ping_cell() {
  local f=$1 count=$2 recv rtt
  read -r _ recv < <(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1 \2/p' "$f")
  rtt=$(sed -n 's|^rtt [^=]*= [0-9.]*/\([0-9.]*\)/.*|\1|p' "$f")
  if [ -z "${recv:-}" ] || [ "$recv" = 0 ]; then echo "FAIL"
  elif [ "$recv" -lt "$count" ]; then echo "loss $((count - recv))/$count"
  else printf 'ok %.2fms' "$rtt"
  fi
}

FAILED=0
PING_PIDS=()
wait_pings() { local j; for j in "${PING_PIDS[@]}"; do wait "$j" || true; done; PING_PIDS=(); }
# pings FROM TO SIZE DF TAG: background ping, summary into $NSL_TMP/ping-TAG-FROM-TO.
pings() {
  local a=$1 b=$2 size=$3 df=$4 tag=$5
  nsx "$a" ping -n -q -c 3 -i 0.05 -W 2 -w 5 -s "$size" -M "$df" "10.11.129.$(idx "$b")" \
    >"$NSL_TMP/ping-$tag-$a-$b" 2>&1 || true
}

echo
echo "== every pair pings across 10.11.129.0/24 (3 x 56 bytes; avg rtt)"
for a in "${SITES[@]}"; do
  for b in "${SITES[@]}"; do
    [ "$a" = "$b" ] && continue
    pings "$a" "$b" 56 dont mesh &
    PING_PIDS+=($!)
  done
done
wait_pings
printf '%-10s' "from\\to"
for b in "${SITES[@]}"; do printf ' %-11s' "$b"; done
echo
for a in "${SITES[@]}"; do
  printf '%-10s' "$a"
  for b in "${SITES[@]}"; do
    if [ "$a" = "$b" ]; then printf ' %-11s' "-"; continue; fi
    c=$(ping_cell "$NSL_TMP/ping-mesh-$a-$b" 3)
    case $c in ok*) ;; *) FAILED=1;; esac
    printf ' %-11s' "$c"
  done
  echo
done

echo
echo "== from makuhari: 1472 bytes with DF (full 1500-byte frames) and 8000 bytes (fragments inside the tunnel)"
for b in "${SITES[@]:1}"; do
  pings makuhari "$b" 1472 "do" df &
  PING_PIDS+=($!)
  pings makuhari "$b" 8000 dont big &
  PING_PIDS+=($!)
done
wait_pings
printf '%-10s' ""
for b in "${SITES[@]}"; do printf ' %-11s' "$b"; done
echo
for row in "df:1472 DF" "big:8000"; do
  tag=${row%%:*}
  printf '%-10s' "${row#*:}"
  for b in "${SITES[@]}"; do
    if [ "$b" = makuhari ]; then printf ' %-11s' "-"; continue; fi
    c=$(ping_cell "$NSL_TMP/ping-$tag-makuhari-$b" 3)
    case $c in ok*) ;; *) FAILED=1;; esac
    printf ' %-11s' "$c"
  done
  echo
done

echo
echo "== vxswitch show peers (makuhari, mode $MODE)"
"$BIN" show peers -S "$NSL_TMP/makuhari.sock" || echo "   (show peers failed)"

if [ -n "${DEMO_KEEP:-}" ]; then
  echo
  echo "segment is up; try: ip netns exec vxdemo-sakura ping 10.11.129.5"
  read -r -p "press Enter to tear it down " _
fi

for s in "${SITES[@]}"; do
  kill -0 "${PID[$s]}" 2>/dev/null || { echo "vxswitch at $s exited early; log:"; tail -n 20 "$NSL_TMP/$s.log"; FAILED=1; }
done
echo
if [ "$FAILED" = 0 ]; then
  echo "== all pairs reachable ($MODE mode); cleaning up"
else
  echo "== some pairs FAILED ($MODE mode); cleaning up"
  for s in "${SITES[@]}"; do echo "-- $s log (tail)"; tail -n 5 "$NSL_TMP/$s.log"; done
fi
exit "$FAILED"
