# shellcheck shell=bash
# demo-services.sh — the services of the original demonstration, for
# scripts/demo.sh (sourced after lib-netns.sh, with SITES, idx and NSL_TMP
# set). Every daemon runs inside a site's namespaces, with its state under
# $NSL_TMP/<site>/:
#
#   web      nginx at makuhari, sakura, idcf and bitisle, each on its public
#            (underlay) address 192.0.2.<i>:80, serving the replicated
#            directory
#   gslb     PowerDNS (bind backend, a LUA record) in namespace "dns" at
#            192.0.2.53: www.demo.example answers the web sites whose port 80
#            is up (ifportup, checked every DEMO_HEALTH_INTERVAL seconds)
#   gluster  a replica-2 volume between bitisle and idcf (one glusterd per
#            site, bricks in $NSL_TMP, a FUSE mount at each), all on their
#            10.11.129.x addresses, so through vxswitch
#   lsyncd   at bitisle and idcf, pushing the volume to rsync daemons bound to
#            10.11.129.x at makuhari, sakura, rise and starbed (inotify on a
#            FUSE mount sees only that mount's writes: each lsyncd pushes what
#            its own site writes, together every write)
#
# The client namespace (192.0.2.100) stands on the internet side and
# resolves through the PowerDNS server.

# shellcheck disable=SC2034 # some of these are read by demo.sh and demo-steps.sh only
WEB_SITES=(makuhari sakura idcf bitisle)
GLUSTER_SITES=(bitisle idcf)
RSYNC_SITES=(makuhari sakura rise starbed)
WWW=www.demo.example
DNS_IDX=53
CLIENT_IDX=100
DNS_ADDR=192.0.2.$DNS_IDX
HEALTH_INTERVAL=${DEMO_HEALTH_INTERVAL:-1}
LSYNC_DELAY=${DEMO_LSYNC_DELAY:-1}
VOL=demo
declare -A SVC=() # "<site>/<daemon>" -> pid of a daemon we started

pub() { echo "192.0.2.$(idx "$1")"; }
ovl() { echo "10.11.129.$(idx "$1")"; }
is_gluster() { [ "$1" = bitisle ] || [ "$1" = idcf ]; }
# repl_dir SITE: the replicated directory at SITE: the GlusterFS mount at
# bitisle and idcf, the rsync daemon's module elsewhere.
repl_dir() { if is_gluster "$1"; then echo "$NSL_TMP/$1/vol"; else echo "$NSL_TMP/$1/www"; fi; }

# --- time and progress ------------------------------------------------------

# now_us: wall clock in microseconds.
now_us() { echo "${EPOCHREALTIME//[.,]/}"; }
# secs_since T0: seconds since T0 (from now_us), three decimals.
secs_since() {
  local d=$(($(now_us) - $1))
  printf '%d.%03d' $((d / 1000000)) $((d % 1000000 / 1000))
}
# secs_le A B: A <= B for decimal seconds.
secs_le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

# wait_progress SECS LABEL CMD...: retry CMD every 0.2 s until it succeeds or
# SECS pass, showing LABEL and the seconds spent (counting up on a
# terminal). WAITED holds the time it took; the status is CMD's last.
WAITED=0
wait_progress() {
  local secs=$1 label=$2; shift 2
  local t0 end=$((SECONDS + secs)) tty="" ok=0
  t0=$(now_us)
  [ -t 1 ] && tty=1
  printf '   %s ... ' "$label"
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$end" ]; then ok=1; break; fi
    [ -n "$tty" ] && printf '\r   %s ... %s s ' "$label" "$(secs_since "$t0")"
    sleep 0.2
  done
  WAITED=$(secs_since "$t0")
  [ -n "$tty" ] && printf '\r\033[K   %s ... ' "$label"
  if [ $ok = 0 ]; then echo "$WAITED s"; else echo "NOT within $WAITED s"; fi
  return $ok
}

# --- files and hashes -------------------------------------------------------

# sha_at SITE PATH: sha256 of PATH as SITE sees it (its mount namespace), or
# nothing if it is not there.
sha_at() { nsm "$1" sha256sum "$2" 2>/dev/null | cut -c1-64 || true; }

# file_ok SITE PATH SHA: PATH at SITE has content SHA.
file_ok() { [ "$(sha_at "$1" "$2")" = "$3" ]; }

# arrivals REL SHA LIMIT SITE...: poll every SITE's replicated directory for
# REL with content SHA, from now until LIMIT seconds; ARRIVED[site] is the
# time it was first seen whole ("" if not within LIMIT).
# shellcheck disable=SC2034 # ARRIVED is read by demo-steps.sh
declare -A ARRIVED=()
arrivals() {
  local rel=$1 sha=$2 limit=$3; shift 3
  local t0 s pending=("$@") left
  t0=$(now_us)
  ARRIVED=()
  while [ ${#pending[@]} -gt 0 ]; do
    left=()
    for s in "${pending[@]}"; do
      if file_ok "$s" "$(repl_dir "$s")/$rel" "$sha"; then ARRIVED[$s]=$(secs_since "$t0"); else left+=("$s"); fi
    done
    pending=("${left[@]}")
    secs_le "$(secs_since "$t0")" "$limit" || break
    [ ${#pending[@]} -gt 0 ] && sleep 0.05
  done
  for s in "${pending[@]}"; do ARRIVED[$s]=""; done
}

# --- mount namespaces -------------------------------------------------------

# site_mntns SITE: SITE's own mount namespace; at the GlusterFS sites also
# private /run, /var/lib/glusterd and /var/log/glusterfs, so two glusterd on
# one machine never share a socket, a UUID or a log.
site_mntns() {
  local s=$1 d=$NSL_TMP/$1
  mkdir -p "$d"
  nsl_mntns "$s"
  is_gluster "$s" || return 0
  mkdir -p "$d/glusterd" "$d/glusterlog" "$d/brick" "$d/vol"
  nsm "$s" mount -t tmpfs -o mode=0755,size=16m vxdemo-run /run
  nsm "$s" mkdir -p /run/gluster
  nsm "$s" mount --bind "$d/glusterd" /var/lib/glusterd
  nsm "$s" mount --bind "$d/glusterlog" /var/log/glusterfs
}

# --- GlusterFS --------------------------------------------------------------

gcli() { local s=$1; shift; nsm "$s" gluster --mode=script "$@"; }

# shellcheck disable=SC2317 # called through wait_progress
peer_connected() { gcli bitisle peer status | grep -q 'Peer in Cluster (Connected)'; }
# shellcheck disable=SC2317
bricks_online() { [ "$(gcli bitisle volume status "$VOL" detail | grep -Ec '^Online +: Y')" = 2 ]; }
# shellcheck disable=SC2317
both_mounted() { nsm bitisle mountpoint -q "$(repl_dir bitisle)" && nsm idcf mountpoint -q "$(repl_dir idcf)"; }

# gluster_up: glusterd at bitisle and idcf, the peer probe and the replica-2
# volume over 10.11.129.0/24, and a FUSE mount of it at both.
gluster_up() {
  local s
  for s in "${GLUSTER_SITES[@]}"; do
    nsm_bg "$s" "$NSL_TMP/$s/glusterd.out" glusterd -N --log-level=WARNING
    SVC[$s/glusterd]=$NSL_LAST_PID
  done
  for s in "${GLUSTER_SITES[@]}"; do
    wait_progress 20 "glusterd at $s" gcli "$s" pool list || return 1
  done
  gcli bitisle peer probe "$(ovl idcf)" >/dev/null
  wait_progress 30 "peer probe bitisle -> idcf ($(ovl idcf))" peer_connected || return 1
  gcli bitisle volume create "$VOL" replica 2 transport tcp \
    "$(ovl bitisle):$NSL_TMP/bitisle/brick" "$(ovl idcf):$NSL_TMP/idcf/brick" force >/dev/null
  gcli bitisle volume set "$VOL" network.ping-timeout 10 >/dev/null
  gcli bitisle volume start "$VOL" >/dev/null
  wait_progress 30 "volume $VOL: both bricks online" bricks_online || return 1
  for s in "${GLUSTER_SITES[@]}"; do
    nsm "$s" glusterfs --volfile-server="$(ovl "$s")" --volfile-id="$VOL" \
      --log-file=/var/log/glusterfs/mount.log "$(repl_dir "$s")"
  done
  wait_progress 20 "FUSE mounts at bitisle and idcf" both_mounted || return 1
  nsl_on_cleanup gluster_unmount
}

# gluster_unmount: detach the FUSE mounts (cleanup; the namespaces go next).
gluster_unmount() {
  local s
  for s in "${GLUSTER_SITES[@]}"; do
    [ -n "${NSL_MNT[$s]:-}" ] && nsm "$s" umount -l "$(repl_dir "$s")" 2>/dev/null
  done
  return 0
}

# gluster_remote_addrs SITE: the remote addresses of the GlusterFS processes'
# TCP connections at SITE, one a line.
gluster_remote_addrs() {
  nsm "$1" ss -Htnp state established | awk '/gluster/ { a = $4; sub(/:[0-9]+$/, "", a); print a }' | sort -u || true
}

# --- rsync daemons and lsyncd ------------------------------------------------

# rsyncd_up SITE: start an rsync daemon on SITE's 10.11.129.x, module "www" (its
# replicated directory), no authentication (inside the demo only).
rsyncd_up() {
  local s=$1 d=$NSL_TMP/$1
  mkdir -p "$d/www"
  cat >"$d/rsyncd.conf" <<EOF
# $s: lsyncd at bitisle and idcf push the GlusterFS volume here
address   = $(ovl "$s")
pid file  = $d/rsyncd.pid
lock file = $d/rsyncd.lock
log file  = $d/rsyncd.log
use chroot = no
uid = root
gid = root

[www]
  path = $d/www
  read only = no
EOF
  rm -f "$d/rsyncd.pid"
  nsm_bg "$s" "$d/rsyncd.out" rsync --daemon --no-detach --config="$d/rsyncd.conf"
  SVC[$s/rsyncd]=$NSL_LAST_PID
}

# listening PORT SITE...: each SITE has a TCP listener on PORT.
# shellcheck disable=SC2317 # called through wait_progress
listening() {
  local port=$1 s; shift
  for s in "$@"; do nsm "$s" ss -Hltn "sport = :$port" | grep -q LISTEN || return 1; done
}

# lsyncd_up SITE: lsyncd at a GlusterFS site, one sync per rsync site, delay
# LSYNC_DELAY; a push that fails (the target is down) is retried.
lsyncd_up() {
  local s=$1 d=$NSL_TMP/$1 t
  {
    echo "-- $s: push what is written through this site's GlusterFS mount"
    echo "settings { nodaemon = true, insist = true, statusFile = \"$d/lsyncd.status\", statusInterval = 1 }"
    for t in "${RSYNC_SITES[@]}"; do
      echo "sync { default.rsync, source = \"$(repl_dir "$s")/\", target = \"rsync://$(ovl "$t")/www/\","
      echo "  delay = $LSYNC_DELAY, rsync = { archive = true, _extra = { \"--contimeout=3\", \"--timeout=10\" } } }"
    done
  } >"$d/lsyncd.lua"
  nsm_bg "$s" "$d/lsyncd.log" lsyncd "$d/lsyncd.lua"
  SVC[$s/lsyncd]=$NSL_LAST_PID
}

# --- web and GSLB -----------------------------------------------------------

# nginx_up SITE: start nginx on SITE's public address, serving its replicated
# directory; X-Site names the site. Workers run as root: the demo's temp dir
# is private to root.
nginx_up() {
  local s=$1 d=$NSL_TMP/$1/nginx
  mkdir -p "$d"
  cat >"$d/nginx.conf" <<EOF
# $s: $WWW on $(pub "$s")
user root;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 128; }
http {
  access_log $d/access.log;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  types { text/html html; application/octet-stream bin; text/plain txt; }
  server {
    listen $(pub "$s"):80;
    server_name $WWW;
    root $(repl_dir "$s");
    add_header X-Site $s always;
  }
}
EOF
  nsm_bg "$s" "$d/nginx.out" nginx -e stderr -p "$d" -c "$d/nginx.conf" -g 'daemon off;'
  SVC[$s/nginx]=$NSL_LAST_PID
}

# pdns_up: PowerDNS in namespace "dns", the zone demo.example with the GSLB
# record; health checks every HEALTH_INTERVAL s, no answer caching.
pdns_up() {
  local d=$NSL_TMP/dns s list=""
  mkdir -p "$d"
  for s in "${WEB_SITES[@]}"; do list+="${list:+, }'$(pub "$s")'"; done
  cat >"$d/named.conf" <<EOF
zone "demo.example" { type master; file "$d/demo.example.zone"; };
EOF
  cat >"$d/demo.example.zone" <<EOF
\$TTL 5
@    IN SOA ns.demo.example. hostmaster.demo.example. 1 60 60 3600 5
@    IN NS  ns.demo.example.
ns   IN A   $DNS_ADDR
; GSLB: every web site whose port 80 answers
www  IN LUA A "ifportup(80, {$list}, {selector='all', timeout=1})"
EOF
  cat >"$d/pdns.conf" <<EOF
launch=bind
bind-config=$d/named.conf
local-address=$DNS_ADDR
local-port=53
socket-dir=$d
daemon=no
guardian=no
enable-lua-records=yes
lua-health-checks-interval=$HEALTH_INTERVAL
cache-ttl=0
query-cache-ttl=0
negquery-cache-ttl=0
loglevel=4
# no security-status queries to the internet
security-poll-suffix=
EOF
  nsl_bg dns "$d/pdns.log" pdns_server --config-dir="$d"
  SVC[dns/pdns]=$NSL_LAST_PID
  wait_progress 15 "PowerDNS at $DNS_ADDR" dns_answers_ns
}

# shellcheck disable=SC2317 # called through wait_progress
dns_answers_ns() { [ "$(nsx client dig +short +time=1 +tries=1 "@$DNS_ADDR" ns.demo.example A)" = "$DNS_ADDR" ]; }

# dns_answer: the A records the client gets for WWW, sorted, on one line.
dns_answer() {
  local out
  out=$(nsx client dig +short +time=1 +tries=1 "@$DNS_ADDR" "$WWW" A 2>/dev/null) || true
  awk '/^[0-9.]+$/' <<<"$out" | sort -t. -k4,4n | tr '\n' ' ' | sed 's/ $//'
}

# addrs_of SITE...: their public addresses as dns_answer prints them.
addrs_of() { local s o=""; for s in "$@"; do o+="${o:+ }$(pub "$s")"; done; echo "$o"; }

# shellcheck disable=SC2317 # called through wait_progress
dns_is() { [ "$(dns_answer)" = "$1" ]; }

# fetch SITE: from the client, GET http://WWW/ at SITE's public address;
# prints "<sha256> <X-Site>" (nothing if the fetch failed).
fetch() {
  local s=$1 out=$NSL_TMP/client/page-$1
  mkdir -p "$NSL_TMP/client"
  rm -f "$out" "$out.h"
  nsx client curl -fsS --max-time 3 --resolve "$WWW:80:$(pub "$s")" -D "$out.h" -o "$out" "http://$WWW/" 2>/dev/null || return 0
  echo "$(sha256sum "$out" | cut -c1-64) $(tr -d '\r' <"$out.h" | sed -n 's/^X-Site: //Ip')"
}

# --- a site lost and back ---------------------------------------------------

# services_stop SITE: stop SITE's nginx and rsync daemon (the switch is
# stopped by the caller).
services_stop() {
  local s=$1 k
  for k in nginx rsyncd; do
    if [ -n "${SVC[$s/$k]:-}" ]; then kill -TERM "${SVC[$s/$k]}" 2>/dev/null || true; fi
  done
  for k in nginx rsyncd; do
    if [ -n "${SVC[$s/$k]:-}" ]; then nsl_stop "${SVC[$s/$k]}"; unset "SVC[$s/$k]"; fi
  done
}

# services_alive: names the daemons we started that are no longer running.
services_dead() {
  local k
  for k in "${!SVC[@]}"; do kill -0 "${SVC[$k]}" 2>/dev/null || echo "$k"; done
}

# service_logs: the tail of every service log (after a failure).
service_logs() {
  local f
  for f in "$NSL_TMP"/dns/pdns.log "$NSL_TMP"/*/lsyncd.log "$NSL_TMP"/*/glusterlog/*.log \
    "$NSL_TMP"/*/rsyncd.log "$NSL_TMP"/*/nginx/error.log; do
    [ -s "$f" ] || continue
    echo "-- ${f#"$NSL_TMP"/} (tail)"
    tail -n 8 "$f" | sed 's/^/   /'
  done
}
