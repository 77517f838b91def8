#!/usr/bin/env bash
# Installs (as root, from Debian) or checks the tools the tests and the demo
# need: iproute2, iperf3, tcpdump, tshark, strongSwan with kernel-libipsec.
set -euo pipefail
pkgs=(iproute2 iputils-ping ethtool iperf3 tcpdump tshark strongswan-charon strongswan-swanctl libcharon-extra-plugins tinc nftables systemd util-linux frr)
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
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
