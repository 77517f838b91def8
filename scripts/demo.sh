#!/usr/bin/env bash
# demo.sh BIN — the original inter-cloud demonstration, whole, on this one
# machine. Six sites in network namespaces (makuhari, sakura, idcf, bitisle,
# rise, starbed) on a routed underlay 192.0.2.<1..6> (rise behind a
# 1400-byte path), one vxswitch per site joining 10.11.129.0/24 (VNI 129, TAP
# vx129) in esp mode keyed by IKEv2, and on that segment the services the
# original ran (scripts/demo-services.sh): GSLB web at four sites (nginx,
# PowerDNS LUA records), GlusterFS between bitisle and idcf, lsyncd from
# those two to the other four. Then:
#   1. every pair pinged (56 bytes, 1472 with DF, 8000 in fragments)
#   2. a client on the internet side resolves the name: four addresses,
#      identical pages from each
#   3. a file written at bitisle: on idcf's GlusterFS mount at once, at all
#      six sites within lsyncd's delay (measured)
#   4. makuhari is lost (its vxswitch, web server and rsync daemon stop): the
#      name drops it (measured), the pages and a write at idcf still get
#      through; makuhari comes back with new SAs, into the answer, and lsyncd
#      catches it up (measured)
#   5. vxswitch show peers / show fdb / fragment counters at rise
#   6. a verdict per check, PASS or FAIL; the exit status is 1 on any FAIL
# Everything is removed at the end (also on Ctrl-C or any error).
#
# Environment:
#   DEMO_MODE=esp|plain      default esp (IKEv2 + ESP in UDP)
#   DEMO_SUITE=...           ESP suite, default aes128gcm16
#   DEMO_KEEP=1              keep it all up (with directions) until Enter
#   DEMO_HEALTH_INTERVAL=N   PowerDNS health checks every N s (default 1)
#   DEMO_LSYNC_DELAY=N       lsyncd's delay in seconds (default 1)
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
MODE=${DEMO_MODE:-esp}
idx() { local i; for i in "${!SITES[@]}"; do [ "${SITES[$i]}" = "$1" ] && echo $((i + 1)); done; return 0; }
mtu_of() { echo "${MTU[$1]:-1500}"; }

# shellcheck source=scripts/demo-services.sh
source ./demo-services.sh
# shellcheck source=scripts/demo-steps.sh
source ./demo-steps.sh

# need: every tool the demo runs, with the Debian package that has it.
need() {
  local t missing=()
  for t in ping:iputils-ping ip:iproute2 nsenter:util-linux unshare:util-linux ss:iproute2 \
    curl:curl dig:bind9-dnsutils pdns_server:pdns-server nginx:nginx glusterd:glusterfs-server \
    gluster:glusterfs-cli glusterfs:glusterfs-client lsyncd:lsyncd rsync:rsync awk:mawk sha256sum:coreutils; do
    command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
  done
  compgen -G '/usr/lib/*/pdns/libbindbackend.so' >/dev/null || missing+=(pdns-backend-bind)
  [ ${#missing[@]} -eq 0 ] || nsl_die "missing packages: ${missing[*]} (make deps, as root)"
}
need

# --- verdicts ----------------------------------------------------------------

VERDICTS=()
FAILS=0
DONE=""
# verdict NAME OK DETAIL: record one check; OK is 0 (pass) or anything else.
verdict() {
  local name=$1 ok=$2 detail=$3 word=PASS
  [ "$ok" = 0 ] || { word=FAIL; FAILS=$((FAILS + 1)); }
  VERDICTS+=("$(printf '  %s  %-16s %s' "$word" "$name" "$detail")")
  echo "   -> $word $name: $detail"
}

# print_verdicts: the verdict section and the final PASS or FAIL line.
print_verdicts() {
  local v
  echo
  echo "== 6. verdict"
  for v in "${VERDICTS[@]}"; do echo "$v"; done
  echo "   $(( ${#VERDICTS[@]} - FAILS )) of ${#VERDICTS[@]} checks passed in $SECONDS s"
  if [ "$FAILS" = 0 ] && [ -n "$DONE" ]; then echo PASS; else echo FAIL; fi
}

# on_error_exit: a run that stops early still ends with what it found and FAIL.
on_error_exit() {
  [ -n "$DONE" ] && return 0
  echo
  echo "== the demo stopped early (see above); service logs:"
  service_logs
  print_verdicts
}

nsl_init vxdemo
nsl_on_cleanup on_error_exit
PSK=$NSL_TMP/mesh.psk
(umask 077; head -c 32 /dev/urandom | base64 >"$PSK")

# --- underlay -----------------------------------------------------------------

echo "== underlay: core router, six sites (rise behind a 1400-byte path), dns and client"
nsl_router
for s in "${SITES[@]}"; do
  nsl_site "$s" "$(idx "$s")" "$(mtu_of "$s")"
done
nsl_site dns "$DNS_IDX" 1500
nsl_site client "$CLIENT_IDX" 1500
# every name lookup in the demo goes to its own PowerDNS, none leaves it
for s in "${SITES[@]}" client dns; do nsl_resolver "$s" "$DNS_ADDR"; done

# --- vxswitch mesh ------------------------------------------------------------

# write_config SITE: the site's TOML, as a user would write it.
write_config() {
  local s=$1 i p j pm
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
    echo "mode     = \"$MODE\""
    if [ "$MODE" = esp ]; then
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
# switch_start SITE: start SITE's vxswitch and wait for its TAP address.
switch_start() {
  local s=$1
  nsl_bg "$s" "$NSL_TMP/$s.log" "$BIN" run -c "$NSL_TMP/$s.toml"
  PID[$s]=$NSL_LAST_PID
}

# shellcheck disable=SC2317 # called through nsl_wait and wait_progress
site_up() {
  kill -0 "${PID[$1]}" 2>/dev/null || return 1
  nsx "$1" ip -br addr show vx129 | grep -q "10.11.129.$(idx "$1")/24"
}

# shellcheck disable=SC2317
reaches() { nsx "$1" ping -n -q -c 1 -W 1 "$2"; }

start_mesh() {
  local s
  for s in "${SITES[@]}"; do write_config "$s"; done
  if ! "$BIN" check -c "$NSL_TMP/${SITES[0]}.toml" >"$NSL_TMP/check.log" 2>&1; then
    nsl_die "vxswitch check rejects mode $MODE: $(head -3 "$NSL_TMP/check.log")"
  fi
  for s in "${SITES[@]}"; do switch_start "$s"; done
  for s in "${SITES[@]}"; do
    if ! nsl_wait 10 site_up "$s"; then
      tail -n 15 "$NSL_TMP/$s.log" | sed 's/^/     /'
      nsl_die "vxswitch at $s did not come up in $MODE mode (its log above)"
    fi
  done
  # The first packets wait for key exchange (ESP): every site reaches makuhari.
  for s in "${SITES[@]:1}"; do
    wait_progress 20 "$s -> makuhari over the segment ($([ "$MODE" = esp ] && echo "IKEv2, then ESP" || echo plain))" \
      reaches "$s" 10.11.129.1 || nsl_die "$s cannot reach makuhari over the segment in $MODE mode"
  done
}

echo
echo "== starting six vxswitch processes, mode $MODE$([ "$MODE" = esp ] && echo ", suite $SUITE")"
start_mesh
echo "   up: $(for s in "${SITES[@]}"; do printf '%s(pid %s) ' "$s" "${PID[$s]}"; done)"
step_segment

# --- the services -------------------------------------------------------------

echo
echo "== services on the segment (state under $NSL_TMP)"
for s in "${SITES[@]}"; do site_mntns "$s"; done
gluster_up || nsl_die "GlusterFS did not come up"
for s in "${RSYNC_SITES[@]}"; do rsyncd_up "$s"; done
wait_progress 10 "rsync daemons on 10.11.129.x:873 at ${RSYNC_SITES[*]}" listening 873 "${RSYNC_SITES[@]}" ||
  nsl_die "an rsync daemon did not start"
seed_content || nsl_die "the first page did not reach both GlusterFS bricks"
for s in "${GLUSTER_SITES[@]}"; do lsyncd_up "$s"; done
wait_progress 30 "lsyncd at bitisle and idcf: start-up sync to ${RSYNC_SITES[*]}" seeded_everywhere ||
  nsl_die "lsyncd's first sync did not reach every site"
for s in "${WEB_SITES[@]}"; do nginx_up "$s"; done
wait_progress 10 "nginx on 192.0.2.x:80 at ${WEB_SITES[*]}" listening 80 "${WEB_SITES[@]}" ||
  nsl_die "an nginx did not start"
pdns_up || nsl_die "PowerDNS did not answer"
wait_progress 20 "GSLB health checks: all four web sites up" dns_is "$(addrs_of "${WEB_SITES[@]}")" ||
  nsl_die "PowerDNS never answered all four web sites"

# --- the run ------------------------------------------------------------------

step_gslb
step_replication
step_disaster
step_show

for s in "${SITES[@]}"; do
  kill -0 "${PID[$s]}" 2>/dev/null || { echo "vxswitch at $s exited early; log:"; tail -n 20 "$NSL_TMP/$s.log"; }
done
dead=$(services_dead | sort | tr '\n' ' ')
gone=$(for s in "${SITES[@]}"; do kill -0 "${PID[$s]}" 2>/dev/null || printf '%s ' "vxswitch@$s"; done)
verdict daemons "$([ -z "$dead$gone" ] && echo 0 || echo 1)" \
  "$([ -z "$dead$gone" ] && echo "all 6 vxswitch and ${#SVC[@]} service daemons still running" || echo "exited: $dead$gone")"

DONE=1
[ "$FAILS" = 0 ] || { echo; echo "== service logs (some checks failed)"; service_logs; }
print_verdicts

if [ -n "${DEMO_KEEP:-}" ]; then
  explore_help
  read -r -p "press Enter to tear it all down " _ || true
fi
echo "== cleaning up"
[ "$FAILS" = 0 ]
