#!/usr/bin/env bash
# bench-e2e.sh BIN — TCP throughput (iperf3) between two hosts on an L2
# overlay in two network namespaces, through:
#   kernel vxlan (the reference), vxswitch plain, vxswitch ESP for each suite,
#   and, where they install here, tinc 1.0 in switch mode and wireguard-go;
# first over a 1500-byte underlay, then with the overlay MTU 1500 over a
# 1400-byte underlay (fragmentation). Prints Gbit/s and the ratio to kernel
# vxlan over the same underlay in the same run, then removes everything.
#
# The underlay is one veth pair between the two namespaces (192.0.2.1/24 and
# 192.0.2.2/24); the overlay hosts are 10.11.129.1 and 10.11.129.2. Both sites,
# iperf3 and the tunnel share the machine's cores, so the numbers are the
# whole system's, and noisy when anything else runs.
#
# BENCH_MTUS may also name routed topologies: "1400r" puts a router between
# the sites whose links are 1500 bytes, with a route MTU of 1400 (it answers
# with ICMP), and "1400bh" does the same with the router's ICMP dropped (a
# PMTU black hole). There vxswitch's peers have no mtu set: it probes.
#
# Environment:
#   BENCH_TIME=8          seconds per iperf3 run
#   BENCH_RUNS=3          iperf3 runs per tunnel; the table shows the median
#   BENCH_ONLY=regex      run only the tunnels whose label matches (kernel is always run)
#   BENCH_PROFILE=full    quick: the references and vxswitch plain and esp
#                         (AES-GCM-128, ChaCha20) over 1500 only; full: every
#                         suite and topology
#   BENCH_MTUS            underlay MTUs and topologies (full: "1500 1400 1400r
#                         1400bh"; quick: "1500")
#   BENCH_DEADLINE=1800   seconds after which remaining runs are skipped
#   BENCH_BIDIR=1         iperf3 --bidir: traffic both ways at once; Gbit/s and
#                         retransmits are both directions' sums
#   BENCH_SWITCH='k = v\n...' extra [switch] settings for vxswitch (e.g. crypto_workers = 2)
#   BENCH_PPROF=dir       save a CPU profile of each vxswitch site during the
#                         first run of each case (dir/LABEL-UMTU-SITE.pprof), taken
#                         from site.pprof on loopback in the site's namespace
set -euo pipefail

BIN=${1:-bin/vxswitch}
[ -x "$BIN" ] || { echo "usage: $0 path/to/vxswitch (not executable: $BIN)" >&2; exit 2; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
cd "$(dirname "$0")"
# shellcheck source=scripts/lib-netns.sh
source ./lib-netns.sh

T=${BENCH_TIME:-8}
RUNS=${BENCH_RUNS:-3}
ONLY=${BENCH_ONLY:-.}
# BENCH_PROFILE=quick: the references and vxswitch plain and esp (AES-GCM,
# ChaCha20) over a direct 1500-byte underlay; full (default): every suite
# and topology.
if [ "${BENCH_PROFILE:-full}" = quick ]; then
  MTUS=${BENCH_MTUS:-1500}
  SUITES=(aes128gcm16 chacha20poly1305)
else
  MTUS=${BENCH_MTUS:-"1500 1400 1400r 1400bh"}
  SUITES=(aes128gcm16 aes256gcm16 chacha20poly1305)
fi
DEADLINE=${BENCH_DEADLINE:-1800}
BIDIR=()
[ "${BENCH_BIDIR:-0}" = 1 ] && BIDIR=(--bidir)
for tool in iperf3 jq ping; do
  command -v "$tool" >/dev/null || { echo "error: $tool not installed (make deps)" >&2; exit 1; }
done

nsl_init vxbench
PSK=$NSL_TMP/bench.psk
(umask 077; head -c 32 /dev/urandom | base64 >"$PSK")

# --- optional references -----------------------------------------------------
TINCD=$(command -v tincd || true)
WGGO="" WGNOTE=""
if command -v go >/dev/null && command -v wg >/dev/null; then
  echo "== building wireguard-go (go install into a temporary GOBIN)"
  # The module is golang.zx2c4.com/wireguard; its binary is named wireguard.
  if GOBIN=$NSL_TMP/gobin GOFLAGS="" timeout 180 go install golang.zx2c4.com/wireguard@latest >"$NSL_TMP/wg-build.log" 2>&1; then
    WGGO=$NSL_TMP/gobin/wireguard
  else
    WGNOTE="go install failed: $(grep -m1 -oE '[0-9]{3} [A-Za-z ]+|no such host|timeout' "$NSL_TMP/wg-build.log" || tail -c 80 "$NSL_TMP/wg-build.log")"
    echo "   $WGNOTE"
  fi
else
  WGNOTE="go or wireguard-tools (wg) not installed"
fi

# --- tunnel set-ups: each makes 10.11.129.1 (a) reach 10.11.129.2 (b) --------
RUN_PIDS=() RUN_SITES=()
bg() { nsl_bg "$@"; RUN_PIDS+=("$NSL_LAST_PID"); RUN_SITES+=("$1"); }
peer_of() { [ "$1" = a ] && echo b || echo a; }
num_of() { [ "$1" = a ] && echo 1 || echo 2; }

setup_kernel() { # UMTU
  local n
  for n in a b; do
    nsl_kernel_vxlan "$n" vx129 129 "192.0.2.$(num_of "$n")" "10.11.129.$(num_of "$n")/24" 1500 "192.0.2.$(num_of "$(peer_of "$n")")"
  done
}

setup_vxswitch() { # UMTU MODE [SUITE]
  local umtu=$1 mode=$2 suite=${3:-aes128gcm16} n p cfg
  for n in a b; do
    p=$(peer_of "$n")
    cfg=$NSL_TMP/vx-$n.toml
    {
      printf '[site]\nname = "%s"\nlisten = "192.0.2.%s"\ncontrol = "%s"\n' "$n" "$(num_of "$n")" "$NSL_TMP/vx-$n.sock"
      [ -n "${BENCH_PPROF:-}" ] && printf 'metrics = "127.0.0.1:9129"\npprof = true\n'
      printf '\n'
      printf '[[segment]]\nvni = 129\ntap = "vx129"\nmtu = 1500\naddress = "10.11.129.%s/24"\n\n' "$(num_of "$n")"
      printf '[security]\nmode = "%s"\n' "$mode"
      [ "$mode" = esp ] && printf 'suite = "%s"\npsk_file = "%s"\n' "$suite" "$PSK"
      [ -n "${BENCH_SWITCH:-}" ] && printf '\n[switch]\n%b\n' "$BENCH_SWITCH"
      printf '\n[[peer]]\nname = "%s"\nendpoint = "192.0.2.%s"\n%s' "$p" "$(num_of "$p")" "$(peer_mtu "$umtu")"
    } >"$cfg"
    chmod 600 "$cfg"
    bg "$n" "$NSL_TMP/run-$n.log" "$BIN" run -c "$cfg"
  done
}

setup_tinc() { # UMTU
  local n d
  for n in a b; do
    d=$NSL_TMP/tinc-$n
    rm -rf "$d"
    mkdir -p "$d/hosts"
    {
      echo "Name = $n"
      echo "Mode = switch"
      echo "DeviceType = tap"
      echo "Interface = tinc0"
      echo "AddressFamily = ipv4"
      echo "BindToAddress = 192.0.2.$(num_of "$n")"
      [ "$n" = a ] && echo "ConnectTo = b"
    } >"$d/tinc.conf"
    printf 'Address = 192.0.2.%s\nPort = 655\n' "$(num_of "$n")" >"$d/hosts/$n"
    # shellcheck disable=SC2016 # $INTERFACE is tinc's, expanded by tinc-up
    printf '#!/bin/sh\nip link set "$INTERFACE" mtu 1500 up\nip addr add 10.11.129.%s/24 dev "$INTERFACE"\n' "$(num_of "$n")" >"$d/tinc-up"
    chmod 755 "$d/tinc-up"
    tincd -c "$d" -K2048 </dev/null >/dev/null 2>&1
  done
  cp "$NSL_TMP/tinc-a/hosts/a" "$NSL_TMP/tinc-b/hosts/a"
  cp "$NSL_TMP/tinc-b/hosts/b" "$NSL_TMP/tinc-a/hosts/b"
  for n in a b; do
    d=$NSL_TMP/tinc-$n
    bg "$n" "$NSL_TMP/run-$n.log" "$TINCD" -c "$d" -D -d1 --pidfile="$d/pid"
  done
}

setup_wg() { # UMTU: wireguard-go's MTU is the underlay's less its 80 bytes (1420 over 1500, 1320 over 1400): it cannot fragment
  local umtu=${1%%[a-z]*} n p dev mtu
  mtu=$((umtu - 80))
  for n in a b; do
    [ -f "$NSL_TMP/wg-$n.key" ] || { (umask 077; wg genkey >"$NSL_TMP/wg-$n.key"); wg pubkey <"$NSL_TMP/wg-$n.key" >"$NSL_TMP/wg-$n.pub"; }
  done
  for n in a b; do
    # One name per site: the control sockets (/var/run/wireguard/NAME.sock)
    # are shared by every namespace.
    p=$(peer_of "$n") dev=wgb$n
    bg "$n" "$NSL_TMP/run-$n.log" env WG_PROCESS_FOREGROUND=1 "$WGGO" -f "$dev"
    nsl_wait 5 nsx "$n" ip link show "$dev" || { echo "no $dev: $(tail -n 3 "$NSL_TMP/run-$n.log")"; return 1; }
    nsl_wait 5 test -S "/var/run/wireguard/$dev.sock" || { echo "no control socket for $dev"; return 1; }
    nsx "$n" wg set "$dev" private-key "$NSL_TMP/wg-$n.key" listen-port 51820 \
      peer "$(cat "$NSL_TMP/wg-$p.pub")" allowed-ips "10.11.129.$(num_of "$p")/32" endpoint "192.0.2.$(num_of "$p"):51820"
    nsx "$n" ip addr add "10.11.129.$(num_of "$n")/24" dev "$dev"
    nsx "$n" ip link set "$dev" mtu "$mtu" up
  done
}

# topo UMTU: the underlay between a and b. "N": one veth pair of MTU N;
# "Nr": 1500-byte links through a router whose route MTU is N; "Nbh": the
# same router, its ICMP errors dropped.
topo() {
  local u=$1 m=${1%%[a-z]*}
  case $u in
    *r|*bh)
      nsl_router
      nsl_site a 1 1500
      nsl_site b 2 1500
      ip -n "$(nsl_ns core)" route change 192.0.2.1/32 dev s1 mtu "$m"
      ip -n "$(nsl_ns core)" route change 192.0.2.2/32 dev s2 mtu "$m"
      if [[ $u == *bh ]]; then
        ip netns exec "$(nsl_ns core)" nft -f - <<'NFT'
table inet bh {
  chain out {
    type filter hook output priority 0;
    icmp type destination-unreachable drop
    icmpv6 type packet-too-big drop
  }
}
NFT
      fi
      ;;
    *) nsl_pair a b "$u" ;;
  esac
}

# peer_mtu UMTU: the peer's mtu line for vxswitch: the link's MTU over a
# direct link, none (probed) over a routed path.
peer_mtu() { case $1 in *r|*bh) ;; *) printf 'mtu = %s\n' "$1" ;; esac; }

# CPU of the tunnel daemons: from a cgroup per site where this machine lets
# us make one (cgroup v1 cpuacct, or v2), which counts every process and
# thread a site's daemon runs; else from /proc per daemon process.
CG_ROOT="" CG_V2=""
if [ -f /sys/fs/cgroup/cgroup.controllers ] && [ -w /sys/fs/cgroup ]; then
  CG_ROOT=/sys/fs/cgroup CG_V2=1
elif [ -f /sys/fs/cgroup/cpuacct/cpuacct.usage ] && [ -w /sys/fs/cgroup/cpuacct ]; then
  CG_ROOT=/sys/fs/cgroup/cpuacct
fi
cg_dir() { echo "$CG_ROOT/vxbench-$$-$1"; }
# cg_remove: the per-site cgroups go once their processes have.
cg_remove() {
  local n
  [ -n "$CG_ROOT" ] || return 0
  for n in a b; do
    if [ -d "$(cg_dir "$n")" ]; then rmdir "$(cg_dir "$n")" 2>/dev/null || true; fi
  done
}
# On an interrupted run the daemons go first, then their cgroups.
cg_cleanup() {
  local pid
  for pid in "${RUN_PIDS[@]}"; do nsl_stop "$pid"; done
  cg_remove
}
nsl_on_cleanup cg_cleanup
# cg_join: the daemons of this case into their site's cgroup ("" if none).
cg_join() {
  [ -n "$CG_ROOT" ] || return 0
  local i d
  for i in "${!RUN_PIDS[@]}"; do
    d=$(cg_dir "${RUN_SITES[$i]}")
    mkdir -p "$d" 2>/dev/null && echo "${RUN_PIDS[$i]}" >"$d/cgroup.procs" 2>/dev/null || { CG_ROOT=""; return 0; }
  done
}
CLK_TCK=$(getconf CLK_TCK)
# daemon_cpu_ns PID...: CPU nanoseconds (user + system) of both sites'
# daemons so far: their cgroups' usage, or /proc/PID/stat's utime + stime.
daemon_cpu_ns() {
  if [ -n "$CG_ROOT" ]; then
    local n t=0 d
    for n in a b; do
      d=$(cg_dir "$n")
      [ -d "$d" ] || continue
      if [ -n "$CG_V2" ]; then
        t=$((t + $(awk '$1 == "usage_usec" {print $2 * 1000}' "$d/cpu.stat")))
      else
        t=$((t + $(cat "$d/cpuacct.usage")))
      fi
    done
    echo "$t"
    return
  fi
  local pid ticks=0 f
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    f=$(sed 's/^.*) //' "/proc/$pid/stat") || continue
    # after "pid (comm) ", field 1 is the state: utime and stime are fields 12 and 13
    ticks=$((ticks + $(echo "$f" | awk '{print $12 + $13}')))
  done
  echo $((ticks * 1000000000 / CLK_TCK))
}

# --- one measurement -----------------------------------------------------------
declare -A GBPS RETR NOTE CPUG
LABELS=()

# run_case LABEL UMTU SETUP ARGS...: fresh namespaces, tunnel up, iperf3 a -> b.
run_case() {
  local label=$1 umtu=$2 fn=$3; shift 3
  local key="$label|$umtu" out rc=0 n pid
  [[ " ${LABELS[*]} " == *" $label "* ]] || LABELS+=("$label")
  if [ "$label" != kernel-vxlan ] && ! [[ $label =~ $ONLY ]]; then NOTE[$key]="-"; return; fi
  if [ $((SECONDS + RUNS * (T + 3) + 12)) -gt "$DEADLINE" ]; then NOTE[$key]="skipped (time)"; return; fi
  printf '   %-30s underlay %s ... ' "$label" "$umtu"
  topo "$umtu"
  RUN_PIDS=() RUN_SITES=()
  if ! "$fn" "$umtu" "$@" >"$NSL_TMP/setup.log" 2>&1; then
    NOTE[$key]="setup failed"; echo "setup failed: $(tail -n 3 "$NSL_TMP/setup.log" | tr '\n' ' ')"
  elif ! nsl_wait 20 nsx a ping -n -q -c 1 -W 1 10.11.129.2; then
    NOTE[$key]="no link"; echo "no link after 20 s"; tail -n 3 "$NSL_TMP/run-a.log" 2>/dev/null | sed 's/^/      /'
  else
    local daemons=("${RUN_PIDS[@]}") cpu0 run gbps=() cpus=() retr=() g
    cg_join
    for run in $(seq "$RUNS"); do
      bg b "$NSL_TMP/iperf3-server.log" iperf3 -s -1 -B 10.11.129.2
      nsl_wait 5 sh -c "ip netns exec $(nsl_ns b) ss -Hltn 'sport = :5201' | grep -q 5201" || true
      out=$NSL_TMP/iperf3-$label-$umtu-$run.json
      cpu0=$(daemon_cpu_ns "${daemons[@]}")
      local prof=()
      if [ -n "${BENCH_PPROF:-}" ] && [[ $label == vxswitch-* ]] && [ "$run" = 1 ]; then
        mkdir -p "$BENCH_PPROF"
        for n in a b; do
          bg "$n" "$NSL_TMP/pprof-$n.log" curl -s -o "$BENCH_PPROF/$label-$umtu-$n.pprof" \
            "http://127.0.0.1:9129/debug/pprof/profile?seconds=$((T - 1))"
          prof+=("$NSL_LAST_PID")
        done
      fi
      rc=0
      timeout $((T + 20)) ip netns exec "$(nsl_ns a)" iperf3 -c 10.11.129.2 -t "$T" -O 1 -J --connect-timeout 3000 "${BIDIR[@]}" >"$out" 2>/dev/null || rc=$?
      for pid in "${prof[@]}"; do wait "$pid" 2>/dev/null || true; done
      if ! [ -s "$out" ] || [ "$(jq -r '.error // empty' "$out")" != "" ] || [ "$rc" != 0 ]; then
        echo "iperf3 failed (rc $rc): $(jq -r '.error // empty' "$out" 2>/dev/null | head -c 120)"
        continue
      fi
      g=$(jq -r '(.end.sum_received.bits_per_second + (.end.sum_received_bidir_reverse.bits_per_second // 0)) / 1e9' "$out")
      gbps+=("$g")
      retr+=("$(jq -r '(.end.sum_sent.retransmits // 0) + (.end.sum_sent_bidir_reverse.retransmits // 0)' "$out")")
      # Both sites' tunnel daemons' CPU seconds per gigabit carried (the
      # kernel's own vxlan has no daemon: its work is softirq, not counted).
      if [ ${#daemons[@]} -gt 0 ]; then
        cpus+=("$(awk -v d="$(($(daemon_cpu_ns "${daemons[@]}") - cpu0))" -v g="$g" -v t="$((T + 1))" \
          'BEGIN{ if (g > 0) printf "%.3f", d / 1e9 / (g * t); else print "-" }')")
      fi
    done
    if [ ${#gbps[@]} -eq 0 ]; then
      NOTE[$key]="iperf3 failed"
    else
      # The median run by throughput (of 3: the middle one), with its
      # retransmits and CPU per gigabit.
      local mid
      mid=$(for i in "${!gbps[@]}"; do echo "${gbps[$i]} $i"; done | sort -g | awk -v n="${#gbps[@]}" 'NR == int((n + 1) / 2) {print $2}')
      GBPS[$key]=${gbps[$mid]}
      RETR[$key]=${retr[$mid]}
      [ ${#cpus[@]} -gt 0 ] && CPUG[$key]=${cpus[$mid]}
      printf '%6.2f Gbit/s  %s CPU s/Gbit  (median of %s: %s)\n' "${GBPS[$key]}" "${CPUG[$key]:--}" "${#gbps[@]}" "${gbps[*]}"
    fi
  fi
  for pid in "${RUN_PIDS[@]}"; do nsl_stop "$pid"; done
  cg_remove
  nsl_remove_prefixed
}

echo "== iperf3 TCP, median of $RUNS runs of ${T}s (after 1s omitted), a $([ ${#BIDIR[@]} -gt 0 ] && echo '<->' || echo '->') b over the overlay; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for umtu in $MTUS; do
  run_case kernel-vxlan "$umtu" setup_kernel
  run_case vxswitch-plain "$umtu" setup_vxswitch plain
  for s in "${SUITES[@]}"; do
    run_case "vxswitch-esp-$s" "$umtu" setup_vxswitch esp "$s"
  done
done
for umtu in $MTUS; do
  if [ -n "$TINCD" ]; then run_case tinc-switch "$umtu" setup_tinc; else LABELS+=(tinc-switch); NOTE["tinc-switch|$umtu"]="not installed"; fi
done
for umtu in $MTUS; do
  if [ -n "$WGGO" ]; then run_case wireguard-go "$umtu" setup_wg; else [[ " ${LABELS[*]} " == *" wireguard-go "* ]] || LABELS+=(wireguard-go); NOTE["wireguard-go|$umtu"]="n/a"; fi
done

# --- table ---------------------------------------------------------------------
echo
echo "== TCP throughput, overlay MTU 1500 (ratio: to kernel vxlan, x-wg: to wireguard-go, over the same underlay in this run)"
printf '%-30s' "tunnel"
for umtu in $MTUS; do printf ' | %-45s' "underlay $umtu: Gbit/s ratio x-wg retr CPUs/Gb"; done
echo
# ratio_to KEY REF: GBPS[KEY] / REF, or "-".
ratio_to() {
  awk -v g="${GBPS[$1]}" -v r="${2:-0}" 'BEGIN{ if (r > 0.01) printf "%4.2f", g / r; else print "   -" }'
}
for label in "${LABELS[@]}"; do
  printf '%-30s' "$label"
  for umtu in $MTUS; do
    key="$label|$umtu"
    if [ -n "${GBPS[$key]:-}" ]; then
      printf ' | %7.2f %6s %6s %11s %10s' "${GBPS[$key]}" "$(ratio_to "$key" "${GBPS["kernel-vxlan|$umtu"]:-}")" \
        "$(ratio_to "$key" "${GBPS["wireguard-go|$umtu"]:-}")" "${RETR[$key]}" "${CPUG[$key]:--}"
    else
      printf ' | %-45s' "${NOTE[$key]:-}"
    fi
  done
  echo
done
[ -n "$WGNOTE" ] && echo "wireguard-go: $WGNOTE"
echo "wireguard-go is an L3 tunnel with an MTU of the underlay's less 80 (1420 over 1500, 1320 over 1400: it does not fragment), shown for reference."
echo "CPUs/Gb: CPU seconds of both sites' tunnel daemons per gigabit received (iperf3's 1 s warm-up included), from $( [ -n "$CG_ROOT" ] && echo "a cgroup per site" || echo "/proc per daemon"); kernel vxlan has no daemon."
echo "done in ${SECONDS}s; cleaning up"
