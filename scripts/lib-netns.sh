# shellcheck shell=bash
# Shared helpers for scripts/demo.sh and scripts/bench-e2e.sh: throwaway
# network namespaces named "$NSL_PREFIX-<name>", processes started in them,
# and one cleanup that removes all of it (on exit, Ctrl-C and TERM).
#
# Usage:
#   source scripts/lib-netns.sh
#   nsl_init vxdemo            # prefix; removes leftovers of an earlier run; sets traps
#   nsl_router                 # core namespace "$NSL_PREFIX-core": an IPv4 router
#   nsl_site makuhari 1 1500   # site namespace, ul0 192.0.2.1/32 via the router, MTU 1500
#   nsl_pair a b 1400          # or: two namespaces joined by one veth, 192.0.2.1/24 and .2/24
#   nsx makuhari ping ...      # run in a namespace
#   nsl_bg makuhari LOG cmd... # start in the background; killed at cleanup; pid in NSL_LAST_PID
#   nsl_mntns makuhari         # a mount namespace of the site's own that lasts (FUSE, bind mounts)
#   nsm makuhari cmd...        # run in the site's network and mount namespaces
#   nsm_bg makuhari LOG cmd... # nsl_bg in both namespaces
#   nsl_resolver client 192.0.2.53  # nsx client ... resolves names there
#
# The core router works like a real path: a site link with a smaller MTU makes
# it fragment packets without DF and answer "fragmentation needed" to DF ones.

NSL_PREFIX=""
NSL_TMP=""
NSL_PIDS=()
NSL_LAST_PID=""
NSL_CLEANUP_HOOKS=()

nsl_die() { echo "error: $*" >&2; exit 1; }

nsl_ns() { echo "$NSL_PREFIX-$1"; }

# nsx NAME CMD... runs CMD in namespace NAME.
nsx() { local n=$1; shift; ip netns exec "$NSL_PREFIX-$n" "$@"; }

# nsl_remove_prefixed deletes every namespace named "$NSL_PREFIX-*", after
# killing whatever still runs in it (processes this script family started).
nsl_remove_prefixed() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${NSL_PREFIX}-" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null || true
    done
    ip netns delete "$ns" 2>/dev/null || true
  done
  # per-namespace files for `ip netns exec` (nsl_resolver)
  rm -rf "/etc/netns/${NSL_PREFIX}-"* 2>/dev/null || true
  if [ -n "${NSL_ETC_NETNS_MADE:-}" ]; then rmdir /etc/netns 2>/dev/null || true; fi
}

nsl_cleanup() {
  local rc=$? pid h
  trap - EXIT INT TERM
  # output may go to a pipe that is gone (Ctrl-C on `make demo | tee`):
  # writes then fail instead of ending the cleanup
  trap '' PIPE
  for h in "${NSL_CLEANUP_HOOKS[@]}"; do eval "$h" || true; done
  for pid in "${NSL_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${NSL_PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  nsl_remove_prefixed
  [ -n "$NSL_TMP" ] && rm -rf "$NSL_TMP"
  return "$rc"
}

# nsl_init PREFIX: requires root and iproute2, removes leftovers, creates a
# private temp dir (NSL_TMP, mode 0700) and installs the cleanup traps.
nsl_init() {
  NSL_PREFIX=$1
  [ "$(id -u)" = 0 ] || nsl_die "must run as root (network namespaces)"
  command -v ip >/dev/null || nsl_die "iproute2 (ip) not installed"
  nsl_remove_prefixed
  NSL_TMP=$(mktemp -d "/tmp/$NSL_PREFIX.XXXXXX")
  chmod 700 "$NSL_TMP"
  trap nsl_cleanup EXIT
  trap 'echo " interrupted, cleaning up" >&2; exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 141' PIPE
}

# nsl_on_cleanup CMD: run CMD (a string) first at cleanup.
nsl_on_cleanup() { NSL_CLEANUP_HOOKS+=("$1"); }

nsl_addns() {
  local ns; ns=$(nsl_ns "$1")
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}

# nsl_router: the core namespace, an IPv4 router with 192.0.2.254 on every
# site link.
nsl_router() {
  nsl_addns core
  ip netns exec "$(nsl_ns core)" sysctl -q -w net.ipv4.ip_forward=1 net.ipv4.icmp_ratelimit=0
}

# nsl_site NAME INDEX MTU: a site namespace whose ul0 has 192.0.2.INDEX/32,
# routed through the core router; both ends of its link have MTU.
nsl_site() {
  local name=$1 i=$2 mtu=${3:-1500} core ns
  core=$(nsl_ns core); ns=$(nsl_ns "$name")
  nsl_addns "$name"
  ip -n "$core" link add "s$i" mtu "$mtu" type veth peer name ul0 mtu "$mtu" netns "$ns"
  ip -n "$core" addr add 192.0.2.254/32 dev "s$i"
  ip -n "$core" link set "s$i" up
  ip -n "$core" route add "192.0.2.$i/32" dev "s$i"
  ip -n "$ns" addr add "192.0.2.$i/32" dev ul0
  ip -n "$ns" link set ul0 up
  ip -n "$ns" route add 192.0.2.254/32 dev ul0
  ip -n "$ns" route add default via 192.0.2.254 dev ul0
}

# nsl_pair A B MTU: two namespaces joined directly by one veth pair (ul0 on
# both sides), 192.0.2.1/24 in A and 192.0.2.2/24 in B.
nsl_pair() {
  local a=$1 b=$2 mtu=${3:-1500}
  nsl_addns "$a"; nsl_addns "$b"
  ip -n "$(nsl_ns "$a")" link add ul0 mtu "$mtu" type veth peer name ul0 mtu "$mtu" netns "$(nsl_ns "$b")"
  ip -n "$(nsl_ns "$a")" addr add 192.0.2.1/24 dev ul0
  ip -n "$(nsl_ns "$b")" addr add 192.0.2.2/24 dev ul0
  ip -n "$(nsl_ns "$a")" link set ul0 up
  ip -n "$(nsl_ns "$b")" link set ul0 up
}

# nsl_bg NAME LOG CMD...: start CMD in namespace NAME in the background,
# output to LOG; the pid (of CMD itself: ip netns exec execs it) goes to
# NSL_LAST_PID and is stopped at cleanup.
nsl_bg() {
  local n=$1 log=$2; shift 2
  ip netns exec "$NSL_PREFIX-$n" "$@" >"$log" 2>&1 &
  NSL_LAST_PID=$!
  NSL_PIDS+=("$NSL_LAST_PID")
}

# nsl_mntns NAME: a mount namespace for site NAME that outlives any one
# command: every `ip netns exec` starts a new one, so a FUSE or bind mount
# made under one would be gone for the next. A holder process (sleep) keeps
# it; nsm and nsm_bg enter it together with the site's network namespace.
# Propagation is slave: mounts made inside never reach the host's, and the
# namespace ends with its last process (the cleanup kills them all).
declare -A NSL_MNT=()
nsl_mntns() {
  local n=$1
  nsl_bg "$n" /dev/null unshare --mount --propagation slave -- sleep infinity
  NSL_MNT[$n]=$NSL_LAST_PID
  # the holder is ready once its mount namespace differs from ours
  nsl_wait 5 nsl_mntns_ready "$NSL_LAST_PID" || nsl_die "mount namespace for $n did not come up"
}

# shellcheck disable=SC2317 # called through nsl_wait
nsl_mntns_ready() {
  [ "$(readlink "/proc/$1/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] &&
    [ "$(readlink "/proc/$1/exe")" = "$(readlink -f "$(command -v sleep)")" ]
}

# nsm NAME CMD...: run CMD in site NAME's network and mount namespaces
# (nsl_mntns first), from /.
nsm() {
  local n=$1; shift
  [ -n "${NSL_MNT[$n]:-}" ] || nsl_die "nsm $n: no mount namespace (nsl_mntns $n)"
  nsenter -t "${NSL_MNT[$n]}" -m -n --wdns=/ -- "$@"
}

# nsm_bg NAME LOG CMD...: like nsl_bg, in the site's mount namespace too.
nsm_bg() {
  local n=$1 log=$2; shift 2
  [ -n "${NSL_MNT[$n]:-}" ] || nsl_die "nsm_bg $n: no mount namespace (nsl_mntns $n)"
  nsenter -t "${NSL_MNT[$n]}" -m -n --wdns=/ -- "$@" >"$log" 2>&1 &
  NSL_LAST_PID=$!
  NSL_PIDS+=("$NSL_LAST_PID")
}

# nsl_resolver NAME ADDR: commands run with nsx in NAME resolve names through
# the DNS server at ADDR (`ip netns exec` binds /etc/netns/<ns>/resolv.conf
# over /etc/resolv.conf); removed at cleanup.
NSL_ETC_NETNS_MADE=""
nsl_resolver() {
  local d=/etc/netns/$NSL_PREFIX-$1
  [ -d /etc/netns ] || NSL_ETC_NETNS_MADE=1
  mkdir -p "$d"
  echo "nameserver $2" >"$d/resolv.conf"
}

# nsl_stop PID: stop one background process now (TERM, then KILL after 2 s);
# the cleanup forgets it, so it never signals a pid that was reused since.
nsl_stop() {
  local pid=$1 p keep=()
  for p in "${NSL_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  NSL_PIDS=("${keep[@]}")
  kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# nsl_wait SECONDS CMD...: retry CMD every 0.1 s until it succeeds.
nsl_wait() {
  local secs=$1; shift
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.1
  done
}

# nsl_kernel_vxlan NAME DEV VNI LOCAL OVERLAY_CIDR MTU REMOTE...: a kernel
# vxlan device with a flood entry per remote.
nsl_kernel_vxlan() {
  local n=$1 dev=$2 vni=$3 local=$4 addr=$5 mtu=$6; shift 6
  local ns; ns=$(nsl_ns "$n")
  ip -n "$ns" link add "$dev" mtu "$mtu" type vxlan id "$vni" local "$local" dstport 4789 ttl 64
  local r
  for r in "$@"; do
    ip netns exec "$ns" bridge fdb append 00:00:00:00:00:00 dev "$dev" dst "$r"
  done
  ip -n "$ns" addr add "$addr" dev "$dev"
  ip -n "$ns" link set "$dev" up
}
