#!/usr/bin/env bash
# CI (root, on a scratch machine): builds the Debian package (make deb),
# installs it with dpkg -i, and checks what it installed: the system user
# and /etc/vxswitch, the unit (systemd-analyze verify of an instance), the
# example configuration (vxswitch check; the unit's ExecStartPre and
# ExecStart with only the unit's capabilities, the switch in a network
# namespace of its own), lintian (no errors); then purges it and checks
# that none of its files is left. Whatever fails, the trap purges
# the package and removes what this script put in /etc/vxswitch.
#
# It refuses to run where vxswitch is already installed or /etc/vxswitch
# holds anything: it would purge a real installation.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*"; }
fail() { printf 'deb-check: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (it installs and purges the package)"
for tool in dpkg-deb lintian go-md2man systemd-analyze setpriv unshare ip man; do
  command -v "$tool" >/dev/null || fail "$tool is missing (bash scripts/deps.sh installs it)"
done
if dpkg-query -W -f='${Status}' vxswitch 2>/dev/null | grep -q 'install ok installed'; then
  fail "the vxswitch package is installed here: this check would purge it"
fi
if [ -n "$(ls -A /etc/vxswitch 2>/dev/null)" ]; then
  fail "/etc/vxswitch is not empty: this check would touch a real configuration"
fi

installed=""
ours=(/etc/vxswitch/example.toml /etc/vxswitch/mesh.psk)
tmp=$(mktemp -d)
cleanup() {
  rc=$?
  rm -f "${ours[@]}"
  if [ -n "$installed" ] && dpkg-query -W vxswitch >/dev/null 2>&1; then
    dpkg --purge vxswitch >/dev/null 2>&1 || echo "deb-check: cleanup: dpkg --purge vxswitch failed" >&2
  fi
  rmdir /etc/vxswitch 2>/dev/null || true
  rm -rf "$tmp"
  [ $rc = 0 ] || echo "deb-check: failed (exit $rc); package purged, /etc/vxswitch cleaned" >&2
  exit $rc
}
trap cleanup EXIT

say "make deb"
deb=$(make -s deb | tail -n 1)
[ -f "$deb" ] || fail "make deb did not name a package (got: $deb)"
echo "$deb"
dpkg-deb -I "$deb" | sed -n 's/^ \(Package\|Version\|Architecture\|Installed-Size\|Depends\):/  \1:/p'

say "dpkg -i"
installed=1
dpkg -i "$deb"
dpkg-query -W -f='${Status} ${Version}\n' vxswitch
dpkg -L vxswitch | sort >"$tmp/files"
nfiles=$(while read -r p; do [ -f "$p" ] && echo "$p"; done <"$tmp/files" | wc -l)
echo "  $nfiles files"
for p in /usr/sbin/vxswitch /usr/lib/systemd/system/vxswitch@.service /usr/lib/sysusers.d/vxswitch.conf \
  /usr/lib/tmpfiles.d/vxswitch.conf /usr/share/man/man8/vxswitch.8.gz /usr/share/doc/vxswitch/copyright \
  /usr/share/doc/vxswitch/changelog.Debian.gz /usr/share/doc/vxswitch/examples/example.toml; do
  grep -qx "$p" "$tmp/files" || fail "the package lacks $p"
done
/usr/sbin/vxswitch version

say "vxswitch(8) renders and carries vxswitch help, line by line"
MANWIDTH=200 man --warnings -l /usr/share/man/man8/vxswitch.8.gz 2>"$tmp/man.err" | sed 's/^ *//' >"$tmp/man.txt"
[ ! -s "$tmp/man.err" ] || fail "man warns: $(cat "$tmp/man.err")"
/usr/sbin/vxswitch help | sed 's/^ *//' | grep -v '^$' | while IFS= read -r l; do
  grep -qxF "$l" "$tmp/man.txt" || fail "vxswitch(8) lacks the help line: $l"
done
echo "  $(wc -l <"$tmp/man.txt") lines; $(/usr/sbin/vxswitch help | grep -c .) help lines found"

say "user, group and /etc/vxswitch"
getent passwd vxswitch || fail "no user vxswitch (sysusers)"
getent group vxswitch || fail "no group vxswitch (sysusers)"
st=$(stat -c '%U %G %a' /etc/vxswitch) || fail "no /etc/vxswitch (tmpfiles)"
echo "  /etc/vxswitch: $st"
[ "$st" = "root vxswitch 750" ] || fail "/etc/vxswitch is $st, want root vxswitch 750"

say "the example, as an operator installs it (/etc/vxswitch/example.toml)"
example=/usr/share/doc/vxswitch/examples/example.toml
install -m 0600 -o vxswitch -g vxswitch "$example" /etc/vxswitch/example.toml
(umask 077 && head -c 32 /dev/urandom | base64 >/etc/vxswitch/mesh.psk)
chown vxswitch:vxswitch /etc/vxswitch/mesh.psk
ls -l /etc/vxswitch

say "systemd-analyze verify vxswitch@example.service"
out=$(systemd-analyze verify vxswitch@example.service 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify said: $out"
echo "  ok"

say "vxswitch check -c $example"
/usr/sbin/vxswitch check -c "$example"

say "the unit's ExecStartPre with only the unit's capabilities and no_new_privs"
unit=/usr/lib/systemd/system/vxswitch@.service
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr ' ' '\n' | sed -n 's/^CAP_\(.*\)/+\L\1/p' | paste -sd, -)
[ -n "$caps" ] || fail "the unit has no CapabilityBoundingSet"
pre=$(sed -n 's/^ExecStartPre=//p' "$unit" | sed 's/%i/example/g')
echo "  bounding set $caps: $pre"
# shellcheck disable=SC2086 # the unit's command line, split as systemd splits it
setpriv --bounding-set "-all,$caps" --no-new-privs -- $pre

say "the unit's ExecStart as systemd runs it: its bounding set, no_new_privs, in its own network"
# A network and mount namespace: an underlay address for site.listen, a
# /run of its own with /run/vxswitch as RuntimeDirectory= makes it. The
# switch must open its TAP and sockets, drop to vxswitch with no
# capability left, answer on its control socket and reload on SIGHUP
# (re-reading the 0600 files vxswitch owns).
start=$(sed -n 's/^ExecStart=//p' "$unit" | sed 's/%i/example/g')
cat >"$tmp/run-unit.sh" <<'INNER'
set -euo pipefail
mount -t tmpfs -o mode=0755 tmpfs /run
install -d -m 0755 /run/vxswitch
ip link set lo up
ip link add vxck0 type veth peer name vxck1
ip addr add 192.0.2.1/24 dev vxck0
ip link set vxck0 up
ip link set vxck1 up
# shellcheck disable=SC2086 # the unit's command line
setpriv --bounding-set "-all,$CAPS" --no-new-privs -- $START >"$LOG" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
waitfor() { # pattern seconds
  for _ in $(seq $(($2 * 10))); do
    grep -q "$1" "$LOG" && return 0
    kill -0 "$pid" 2>/dev/null || { echo "vxswitch exited:"; cat "$LOG"; return 1; }
    sleep 0.1
  done
  echo "no \"$1\" in $2 s:"; cat "$LOG"; return 1
}
waitfor 'msg="vxswitch running"' 10
waitfor 'msg="dropped privileges" user=vxswitch' 1
status=$(grep -E '^(Uid|Gid|CapEff|CapPrm|CapBnd|NoNewPrivs):' "/proc/$pid/status")
echo "$status" | sed 's/^/  /'
uid=$(id -u vxswitch)
echo "$status" | grep -qP "^Uid:\t$uid\t$uid\t$uid\t$uid$" || { echo "not running as vxswitch"; exit 1; }
echo "$status" | grep -qP '^CapEff:\t0{16}$' || { echo "capabilities left after the drop"; exit 1; }
echo "$status" | grep -qP '^NoNewPrivs:\t1$' || { echo "no no_new_privs"; exit 1; }
sock=$(stat -c '%U %a' /run/vxswitch/example.sock)
echo "  /run/vxswitch/example.sock: $sock"
[ "$sock" = "vxswitch 600" ] || { echo "the control socket is $sock, want vxswitch 600"; exit 1; }
/usr/sbin/vxswitch show peers -S /run/vxswitch/example.sock | sed 's/^/  /'
kill -HUP "$pid"
waitfor 'msg="reload: peers replaced"' 5
kill -TERM "$pid"
wait "$pid" || { echo "vxswitch exited with $? on SIGTERM:"; cat "$LOG"; exit 1; }
trap - EXIT
grep -E 'msg="(dropped privileges|reload: peers replaced|vxswitch stopped)"' "$LOG" | sed 's/^/  /'
INNER
CAPS=$caps START=$start LOG=$tmp/run.log unshare --net --mount bash "$tmp/run-unit.sh" || fail "the unit's ExecStart (log: above)"

say "lintian"
lintian --fail-on error "$deb" >"$tmp/lintian" 2>&1 || { cat "$tmp/lintian"; fail "lintian reports errors"; }
grep -v '^running with root privileges' "$tmp/lintian" || true
if grep -q '^E:' "$tmp/lintian"; then fail "lintian reports errors"; fi

say "dpkg --purge"
rm -f "${ours[@]}"
dpkg --purge vxswitch
installed=""
if dpkg-query -W -f='${Status}' vxswitch 2>/dev/null | grep -q 'installed'; then
  fail "vxswitch is still installed"
fi
left=()
while read -r p; do
  # the package's own files and directories; /usr, /usr/lib and the like stay
  if [ -f "$p" ] || [ -L "$p" ] || { [ -d "$p" ] && [[ $p == *vxswitch* ]]; }; then
    left+=("$p")
  fi
done <"$tmp/files"
[ -e /etc/vxswitch ] && left+=(/etc/vxswitch)
[ ${#left[@]} -eq 0 ] || fail "left after purge: ${left[*]}"
echo "  nothing of the package is left ($(wc -l <"$tmp/files") paths checked; the user vxswitch stays)"
say "PASS"
