#!/usr/bin/env bash
# Installs (as root, from Debian) or checks the tools the tests and the demo
# need: iproute2, iperf3, tcpdump, tshark, strongSwan with kernel-libipsec,
# and the demo's services (PowerDNS, nginx, GlusterFS, lsyncd, rsync, dig,
# curl), promtool (Debian's prometheus) for the alerting rules' tests, and
# what make deb and scripts/deb-check.sh use (lintian, go-md2man, man-db,
# binutils' strip). .ci/run installs through this list too. Packages are
# installed without starting their system services (policy-rc.d): the demo
# runs its own, inside its namespaces.
set -euo pipefail
pkgs=(iproute2 iputils-ping ethtool iperf3 tcpdump tshark strongswan-charon strongswan-swanctl libcharon-extra-plugins tinc nftables systemd util-linux frr gobgpd jq wireguard-tools
  pdns-server pdns-backend-bind nginx glusterfs-server glusterfs-client lsyncd rsync bind9-dnsutils curl
  prometheus lintian go-md2man man-db binutils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# no daemon starts at install (pdns on :53, nginx on :80, glusterd), unless
# the machine already has its own policy
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
