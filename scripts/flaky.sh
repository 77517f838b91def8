#!/usr/bin/env bash
# Runs the tests that race a real daemon (strongSwan, FRR, gobgpd, iperf3)
# or the scheduler, each FLAKY_N times (default 5) in a loop, and prints per
# test the runs, the failures and the slowest run against its bound, so a
# flake is found here rather than in CI. As root: the tests build network
# namespaces.
#
#   FLAKY_N=10 make flaky
#   FLAKY_ONLY='StrongSwan' FLAKY_N=50 make flaky     # a regexp of test names
#   FLAKY_PKGS='e2e' FLAKY_N=3 make flaky              # a regexp of package paths
#
# The bound of a run is FLAKY_BOUND (default 300s), the -test.timeout each
# run gets: a run over half of it is marked, since it would fail on a machine
# twice as slow. The race detector is on, as in `make test` (FLAKY_RACE=0
# turns it off). Failing runs' output goes to $FLAKY_DIR/<test>.<run>.log.
set -uo pipefail
cd "$(dirname "$0")/.."
n=${FLAKY_N:-5}
bound=${FLAKY_BOUND:-300s}
only=${FLAKY_ONLY:-.}
pkgs=${FLAKY_PKGS:-.}
dir=${FLAKY_DIR:-$(mktemp -d /tmp/vxswitch-flaky.XXXXXX)}
race=-race
[ "${FLAKY_RACE:-1}" = 0 ] && race=
mkdir -p "$dir"

# package: the tests of it that meet a real daemon or race the scheduler
# (the other tests of these packages are unit tests on the manual clock)
declare -A pick=(
  [./crypto/ike]='^Test(StrongSwan|ListenUDP|IPv6|NATRebinding|SixSiteMesh)'
  [./evpn]='^Test(ReceivedRoutes|StaticPeerKept|MACMobility|MACIPRoutes|BestRouteWins|ReloadSettlesPeers)$'
  [./e2e]='^Test'
  [./cmd/vxswitch]='^Test(BinaryTwoSites|ServeSite|Capture|Control)'
  [./internal/nstest]='^Test'
)
# opt-in scale and soak runs are not flake checks
skip='^Test(Soak|FloodLoad|EVPNHundredsOfSites|EVPNHundredSites|EVPNFlapStorm|Ingest)$'

bounds=${bound%s}
printf '%-44s %5s %5s %9s %9s  %s\n' test runs fails median slowest "bound $bound"
total_fail=0
for pkg in "${!pick[@]}"; do
  [[ $pkg =~ $pkgs ]] || continue
  bin="$dir/$(basename "$pkg").test"
  go test $race -c -o "$bin" "$pkg" || { echo "build $pkg failed"; exit 1; }
  for t in $(cd "$pkg" && "$bin" -test.list "${pick[$pkg]}" | grep -E "$only" | grep -Ev "$skip"); do
    fails=0
    times=()
    for i in $(seq 1 "$n"); do
      start=$(date +%s.%N)
      if ! (cd "$pkg" && "$dir/$(basename "$pkg").test" -test.run "^$t\$" -test.count=1 -test.timeout "$bound" >"$dir/$t.$i.log" 2>&1); then
        fails=$((fails + 1))
      else
        rm -f "$dir/$t.$i.log"
      fi
      times+=("$(echo "$(date +%s.%N) - $start" | bc)")
    done
    sorted=$(printf '%s\n' "${times[@]}" | sort -n)
    median=$(echo "$sorted" | sed -n "$(((n + 1) / 2))p")
    slowest=$(echo "$sorted" | tail -1)
    mark=""
    [ "$(echo "$slowest > $bounds / 2" | bc)" = 1 ] && mark="over half the bound"
    [ "$fails" -gt 0 ] && mark="FLAKY ($dir/$t.*.log) $mark"
    printf '%-44s %5d %5d %8.1fs %8.1fs  %s\n' "$t" "$n" "$fails" "$median" "$slowest" "$mark"
    total_fail=$((total_fail + fails))
  done
done
echo "failures: $total_fail (logs of failed runs in $dir)"
[ "$total_fail" = 0 ]
