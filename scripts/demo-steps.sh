# shellcheck shell=bash
# demo-steps.sh — the numbered steps of scripts/demo.sh (sourced by it): each
# shows what happens, measures it and records a verdict from what it saw
# (ping summaries, DNS answers, sha256 of pages and files, timings). It uses
# demo.sh's SITES, idx, BIN, MODE, PID and verdict.
# shellcheck disable=SC2153 # SITES is demo.sh's

TOKEN=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
INDEX_SHA=""

# --- seeding -------------------------------------------------------------------

# seed_content: the page, written at bitisle through its GlusterFS mount
# before lsyncd starts (lsyncd's start-up sync then carries it everywhere).
seed_content() {
  local src=$NSL_TMP/index.html
  cat >"$src" <<EOF
<!doctype html>
<title>$WWW</title>
<h1>$WWW</h1>
<p>Served by makuhari, sakura, idcf and bitisle from one directory: a GlusterFS
replica-2 volume at bitisle and idcf, pushed by lsyncd to the other four sites,
all over 10.11.129.0/24 through vxswitch. Run $TOKEN.</p>
EOF
  INDEX_SHA=$(sha256sum "$src" | cut -c1-64)
  nsm bitisle cp "$src" "$(repl_dir bitisle)/index.html"
  wait_progress 15 "index.html on both bricks and idcf's mount" seeded_gluster
}

# shellcheck disable=SC2317 # called through wait_progress
seeded_gluster() {
  file_ok bitisle "$NSL_TMP/bitisle/brick/index.html" "$INDEX_SHA" &&
    file_ok idcf "$NSL_TMP/idcf/brick/index.html" "$INDEX_SHA" &&
    file_ok idcf "$(repl_dir idcf)/index.html" "$INDEX_SHA"
}

# shellcheck disable=SC2317
seeded_everywhere() {
  local s
  for s in "${RSYNC_SITES[@]}"; do file_ok "$s" "$(repl_dir "$s")/index.html" "$INDEX_SHA" || return 1; done
}

# --- 1. the segment ------------------------------------------------------------

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

PING_PIDS=()
wait_pings() { local j; for j in "${PING_PIDS[@]}"; do wait "$j" || true; done; PING_PIDS=(); }
# pings FROM TO SIZE DF TAG: background ping, summary into $NSL_TMP/ping-TAG-FROM-TO.
pings() {
  local a=$1 b=$2 size=$3 df=$4 tag=$5
  nsx "$a" ping -n -q -c 3 -i 0.05 -W 2 -w 5 -s "$size" -M "$df" "10.11.129.$(idx "$b")" \
    >"$NSL_TMP/ping-$tag-$a-$b" 2>&1 || true
}

step_segment() {
  local a b c row tag bad=0 pairs=0
  echo
  echo "== 1. every pair pings across 10.11.129.0/24 (3 x 56 bytes; avg rtt)"
  for a in "${SITES[@]}"; do
    for b in "${SITES[@]}"; do
      [ "$a" = "$b" ] && continue
      pings "$a" "$b" 56 dont mesh &
      PING_PIDS+=($!)
    done
  done
  wait_pings
  printf '   %-10s' "from\\to"
  for b in "${SITES[@]}"; do printf ' %-11s' "$b"; done
  echo
  for a in "${SITES[@]}"; do
    printf '   %-10s' "$a"
    for b in "${SITES[@]}"; do
      if [ "$a" = "$b" ]; then printf ' %-11s' "-"; continue; fi
      c=$(ping_cell "$NSL_TMP/ping-mesh-$a-$b" 3)
      pairs=$((pairs + 1))
      case $c in ok*) ;; *) bad=$((bad + 1)) ;; esac
      printf ' %-11s' "$c"
    done
    echo
  done

  echo
  echo "   from makuhari: 1472 bytes with DF (full 1500-byte frames) and 8000 bytes (fragments inside the tunnel)"
  for b in "${SITES[@]:1}"; do
    pings makuhari "$b" 1472 "do" df &
    PING_PIDS+=($!)
    pings makuhari "$b" 8000 dont big &
    PING_PIDS+=($!)
  done
  wait_pings
  printf '   %-10s' ""
  for b in "${SITES[@]}"; do printf ' %-11s' "$b"; done
  echo
  for row in "df:1472 DF" "big:8000"; do
    tag=${row%%:*}
    printf '   %-10s' "${row#*:}"
    for b in "${SITES[@]}"; do
      if [ "$b" = makuhari ]; then printf ' %-11s' "-"; continue; fi
      c=$(ping_cell "$NSL_TMP/ping-$tag-makuhari-$b" 3)
      pairs=$((pairs + 1))
      case $c in ok*) ;; *) bad=$((bad + 1)) ;; esac
      printf ' %-11s' "$c"
    done
    echo
  done
  verdict segment "$bad" "$((pairs - bad))/$pairs ping runs answered in full (30 pairs; 1472 DF and 8000 bytes to 5), $MODE mode"
}

# --- 2. GSLB and the web --------------------------------------------------------

# site_of ADDR: the site whose public address is ADDR.
site_of() { local s; for s in "${SITES[@]}"; do [ "$(pub "$s")" = "$1" ] && echo "$s"; done; return 0; }

# pages SITE...: fetch the page at each site's address; print a row each;
# PAGES_OK is 0 if every page came back with INDEX_SHA.
PAGES_OK=0
pages() {
  local s r sha from
  PAGES_OK=0
  for s in "$@"; do
    r=$(fetch "$s")
    sha=${r%% *} from=${r#* }
    if [ -n "$r" ] && [ "$sha" = "$INDEX_SHA" ]; then
      printf '   %-12s %-9s sha256 %s  identical\n' "$(pub "$s")" "$from" "${sha:0:16}"
    else
      PAGES_OK=1
      printf '   %-12s %-9s %s\n' "$(pub "$s")" "${from:--}" "${sha:+sha256 ${sha:0:16}  DIFFERENT}${r:-no page}"
    fi
  done
}

step_gslb() {
  local ans want a sites=() byname
  echo
  echo "== 2. the client (192.0.2.100) resolves $WWW at $DNS_ADDR (PowerDNS, LUA ifportup every ${HEALTH_INTERVAL}s)"
  want=$(addrs_of "${WEB_SITES[@]}")
  ans=$(dns_answer)
  echo "   dig $WWW A  ->  ${ans:-no answer}"
  verdict gslb-answer "$([ "$ans" = "$want" ] && echo 0 || echo 1)" "$WWW -> ${ans:-nothing} (want $want)"
  for a in $ans; do sites+=("$(site_of "$a")"); done
  echo "   GET http://$WWW/ at each address (index.html as written at bitisle: sha256 ${INDEX_SHA:0:16})"
  pages "${sites[@]}"
  verdict web-identical "$([ "$PAGES_OK" = 0 ] && [ ${#sites[@]} = 4 ] && echo 0 || echo 1)" \
    "${#sites[@]} pages, sha256 ${INDEX_SHA:0:16} from each: $([ "$PAGES_OK" = 0 ] && echo identical || echo "NOT identical")"
  byname=$(nsx client curl -fsS --max-time 3 -o /dev/null -w '%{remote_ip}' "http://$WWW/" 2>/dev/null || true)
  echo "   by name through the client's resolver (libc, PowerDNS): curl http://$WWW/ went to ${byname:-nothing}"
}

# --- 3. replication -------------------------------------------------------------

# arrival_table WRITER SITE...: ARRIVED as a table.
arrival_table() {
  local w=$1 s how when; shift
  printf '   %-9s %-38s %s\n' site "replicated directory" arrived
  for s in "$@"; do
    if is_gluster "$s"; then how="GlusterFS mount"; else how="rsync daemon (lsyncd from $w)"; fi
    if [ "$s" = "$w" ]; then when="written here"
    elif [ -n "${ARRIVED[$s]}" ]; then when="${ARRIVED[$s]} s, sha256 ok"
    else when="NOT within the limit"; fi
    printf '   %-9s %-38s %s\n' "$s" "$how" "$when"
  done
}

# arrived_all LIMIT SITE...: every SITE's ARRIVED is within LIMIT.
arrived_all() {
  local limit=$1 s; shift
  for s in "$@"; do [ -n "${ARRIVED[$s]}" ] && secs_le "${ARRIVED[$s]}" "$limit" || return 1; done
}

# max_arrived SITE...: the latest arrival among SITEs.
max_arrived() {
  local s m=0
  for s in "$@"; do [ -n "${ARRIVED[$s]}" ] && ! secs_le "${ARRIVED[$s]}" "$m" && m=${ARRIVED[$s]}; done
  echo "$m"
}

# the limits of the timed checks: lsyncd's delay plus the transfer; a health
# check already under way plus the next one
LSYNC_LIMIT=$((LSYNC_DELAY + 4))
DNS_LIMIT=$((2 * HEALTH_INTERVAL + 2))

step_replication() {
  local src=$NSL_TMP/build.bin sha rel=releases/build-$TOKEN.bin t0 wrote brick=1 ovl_ok=1 remotes s a
  echo
  echo "== 3. a file written at bitisle: GlusterFS to idcf at once, lsyncd (delay ${LSYNC_DELAY}s) to the other four"
  head -c 1048576 /dev/urandom >"$src"
  sha=$(sha256sum "$src" | cut -c1-64)
  t0=$(now_us)
  nsm bitisle mkdir -p "$(repl_dir bitisle)/releases"
  nsm bitisle cp "$src" "$(repl_dir bitisle)/$rel"
  wrote=$(secs_since "$t0")
  file_ok idcf "$NSL_TMP/idcf/brick/$rel" "$sha" && brick=0
  echo "   wrote /$rel (1 MiB, sha256 ${sha:0:16}) through bitisle's mount in $wrote s; idcf's brick: $([ $brick = 0 ] && echo "has it, sha256 ok" || echo "NOT there")"
  arrivals "$rel" "$sha" "$LSYNC_LIMIT" bitisle idcf makuhari sakura rise starbed
  arrival_table bitisle bitisle idcf makuhari sakura rise starbed
  for s in "${GLUSTER_SITES[@]}"; do
    remotes=$(gluster_remote_addrs "$s" | tr '\n' ' ')
    echo "   GlusterFS TCP peers seen at $s: ${remotes:-none}"
    case " $remotes" in *" 10.11.129."*) ;; *) ovl_ok=0 ;; esac
    for a in $remotes; do
      case $a in 10.11.129.* | 127.0.0.1 | "[::1]" | ::1 | "[::ffff:127.0.0.1]") ;; *) ovl_ok=0 ;; esac
    done
  done
  verdict gluster-replica "$([ $brick = 0 ] && [ $ovl_ok = 1 ] && arrived_all 1 idcf && echo 0 || echo 1)" \
    "on idcf's brick when the write returned, on its mount after ${ARRIVED[idcf]:-never} s; GlusterFS talks only 10.11.129.x$([ $ovl_ok = 1 ] || echo " (NOT so)")"
  verdict lsyncd-six "$(arrived_all "$LSYNC_LIMIT" "${SITES[@]}" && echo 0 || echo 1)" \
    "at all six sites with its sha256, the last after $(max_arrived "${SITES[@]}") s (limit $LSYNC_LIMIT s = delay $LSYNC_DELAY s + 4)"
}

# --- 4. a site lost and back ----------------------------------------------------

# sas_with SITE PEER: SITE's SAs with PEER as "dir:spi", one a line.
sas_with() { "$BIN" show sas -S "$NSL_TMP/$1.sock" 2>/dev/null | awk -v p="$2" '$1 == p { print $2 ":" $3 }' | sort || true; }

# new_sas SITE OLD: SITE holds an in and an out SA with makuhari that are
# not among OLD (sas_with's lines from before).
new_sas() {
  local cur d
  cur=$(sas_with "$1" makuhari)
  for d in in out; do
    comm -23 <(grep "^$d:" <<<"$cur" || true) <(printf '%s\n' "$2") | grep -q . || return 1
  done
}

step_disaster() {
  local s t0 t1 ok three fail_t back_t ans detail rel=outage-$TOKEN.txt src=$NSL_TMP/outage.txt sha others=() sa_ok=0 sa_info="" reach="reaches all five"
  declare -A old=()
  for s in "${SITES[@]}"; do [ "$s" = makuhari ] || others+=("$s"); done
  echo
  echo "== 4. disaster: makuhari is lost (its vxswitch, nginx and rsync daemon stop)"
  for s in "${others[@]}"; do old[$s]=$(sas_with "$s" makuhari); done
  t0=$(now_us)
  for s in "${PID[makuhari]}" "${SVC[makuhari/nginx]}" "${SVC[makuhari/rsyncd]}"; do kill -TERM "$s" 2>/dev/null || true; done
  nsl_stop "${PID[makuhari]}"
  services_stop makuhari
  echo "   stopped in $(secs_since "$t0") s"
  three=$(addrs_of sakura idcf bitisle)
  ok=1
  wait_progress 20 "$WWW drops makuhari (health checks every ${HEALTH_INTERVAL}s)" dns_is "$three" && ok=0
  fail_t=$(secs_since "$t0")
  ans=$(dns_answer)
  echo "   dig $WWW A  ->  ${ans:-no answer}   ($fail_t s after makuhari was lost)"
  if [ $ok = 0 ]; then
    secs_le "$fail_t" "$DNS_LIMIT" || ok=1
    verdict failover-dns "$ok" "the three others $fail_t s after the loss (health checks every $HEALTH_INTERVAL s; limit $DNS_LIMIT s)"
  else
    verdict failover-dns 1 "still ${ans:-no answer} $fail_t s after the loss (want $three)"
  fi
  echo "   the pages, from the three it answers (makuhari's address for comparison):"
  pages sakura idcf bitisle
  ok=$PAGES_OK
  detail="sakura, idcf, bitisle: $([ "$ok" = 0 ] && echo "sha256 ${INDEX_SHA:0:16} from each" || echo "NOT all serving sha256 ${INDEX_SHA:0:16}")"
  pages makuhari >/dev/null
  [ "$PAGES_OK" = 1 ] || ok=1
  echo "   $(pub makuhari)    makuhari  $([ "$PAGES_OK" = 1 ] && echo "no page (down)" || echo "STILL serving")"
  verdict failover-web "$ok" "$detail; makuhari: $([ "$PAGES_OK" = 1 ] && echo "no page" || echo "STILL serving")"

  echo "   a file written at idcf during the outage:"
  printf 'written at idcf while makuhari was down, run %s\n' "$TOKEN" >"$src"
  sha=$(sha256sum "$src" | cut -c1-64)
  nsm idcf cp "$src" "$(repl_dir idcf)/$rel"
  arrivals "$rel" "$sha" "$LSYNC_LIMIT" idcf bitisle sakura rise starbed
  arrival_table idcf idcf bitisle sakura rise starbed
  echo "   makuhari  (down)"
  verdict outage-write "$(arrived_all 1 idcf bitisle && arrived_all "$LSYNC_LIMIT" sakura rise starbed && echo 0 || echo 1)" \
    "/$rel at bitisle after ${ARRIVED[bitisle]:-never} s, at sakura, rise, starbed after $(max_arrived sakura rise starbed) s"

  echo
  echo "   makuhari comes back"
  t1=$(now_us)
  switch_start makuhari
  wait_progress 10 "vxswitch at makuhari up" site_up makuhari || true
  for s in "${others[@]}"; do
    wait_progress 20 "makuhari -> $s over the segment" reaches makuhari "$(ovl "$s")" || { sa_ok=1; reach="does NOT reach all five"; }
  done
  back_t=$(secs_since "$t1")
  if [ "$MODE" = esp ]; then
    for s in "${others[@]}"; do
      if new_sas "$s" "${old[$s]}"; then sa_info+="$s "; else sa_ok=1; sa_info+="$s(OLD) "; fi
    done
    echo "   SAs with makuhari at sakura, before: $(echo "${old[sakura]}" | tr '\n' ' ')"
    echo "                               now: $(sas_with sakura makuhari | tr '\n' ' ')"
    verdict recover-sas "$sa_ok" "makuhari $reach $back_t s after its restart; new SAs (in and out) at ${sa_info% }"
  else
    verdict recover-sas "$sa_ok" "makuhari $reach $back_t s after its restart; plain mode: no SAs, reachable from all five"
  fi
  rsyncd_up makuhari
  wait_progress 10 "rsync daemon at makuhari" listening 873 makuhari || true
  arrivals "$rel" "$sha" 30 makuhari
  if [ -n "${ARRIVED[makuhari]}" ]; then
    echo "   lsyncd (at idcf) caught makuhari up: /$rel there ${ARRIVED[makuhari]} s after its rsync daemon was back, sha256 ok"
  else
    echo "   lsyncd (at idcf) did NOT catch makuhari up within 30 s"
  fi
  verdict recover-lsyncd "$([ -n "${ARRIVED[makuhari]}" ] && echo 0 || echo 1)" \
    "the outage's file at makuhari ${ARRIVED[makuhari]:-never} s after its rsync daemon was back"
  nginx_up makuhari
  wait_progress 10 "nginx at makuhari" listening 80 makuhari || true
  t1=$(now_us)
  ok=1
  wait_progress 20 "$WWW answers makuhari again" dns_is "$(addrs_of "${WEB_SITES[@]}")" && ok=0
  back_t=$(secs_since "$t1")
  ans=$(dns_answer)
  if [ $ok = 0 ]; then
    secs_le "$back_t" "$DNS_LIMIT" || ok=1
    detail="four addresses again $back_t s after makuhari's nginx was back (limit $DNS_LIMIT s)"
  else
    detail="still ${ans:-no answer} $back_t s after makuhari's nginx was back"
  fi
  pages makuhari
  [ "$PAGES_OK" = 0 ] || ok=1
  verdict recover-dns "$ok" "$detail; its page $([ "$PAGES_OK" = 0 ] && echo identical || echo "NOT identical")"
}

# --- 5. the switch's own view ---------------------------------------------------

step_show() {
  local sock=$NSL_TMP/rise.sock frags reasm
  echo
  echo "== 5. vxswitch at rise (behind the 1400-byte path): show peers, show fdb, fragment counters"
  "$BIN" show peers -S "$sock" | sed 's/^/   /' || echo "   (show peers failed)"
  echo
  "$BIN" show fdb -S "$sock" | sed 's/^/   /' || echo "   (show fdb failed)"
  echo
  "$BIN" show stats -S "$sock" | grep -E '^SCOPE|frag|reassem' | sed 's/^/   /' || true
  frags=$("$BIN" show peers --json -S "$sock" | awk -F: '/"tx_fragments"/ { s += $2 } END { print s + 0 }' || echo 0)
  reasm=$("$BIN" show stats -S "$sock" | awk '$(NF-1) == "rx_reassembled" { s += $NF } END { print s + 0 }' || echo 0)
  if [ "$MODE" = esp ]; then
    verdict fragments "$([ "$frags" -gt 0 ] && [ "$reasm" -gt 0 ] && echo 0 || echo 1)" \
      "rise sent $frags tunnel fragments (TX-FRAGS) and reassembled $reasm packets (rx_reassembled)"
  else
    # plain mode fragments the outer packet: the receiving kernel reassembles it
    verdict fragments "$([ "$frags" -gt 0 ] && echo 0 || echo 1)" \
      "rise sent $frags outer fragments (TX-FRAGS; plain mode: the receiver's kernel reassembles)"
  fi
}

# --- DEMO_KEEP ------------------------------------------------------------------

explore_help() {
  cat <<EOF

== it is all still up; try (as root):
   ip netns exec vxdemo-client curl -s http://$WWW/           # by name, through PowerDNS
   ip netns exec vxdemo-client dig @$DNS_ADDR $WWW
   nsenter -t ${NSL_MNT[idcf]} -m -n ls -l $(repl_dir idcf)            # idcf's GlusterFS mount
   nsenter -t ${NSL_MNT[bitisle]} -m -n gluster volume status $VOL
   echo hi | nsenter -t ${NSL_MNT[bitisle]} -m -n tee $(repl_dir bitisle)/hi.txt; ls $(repl_dir sakura)
   ip netns exec vxdemo-sakura ping 10.11.129.5                    # across the segment to rise
   $BIN show peers -S $NSL_TMP/makuhari.sock
   logs and configs: $NSL_TMP/<site>/
EOF
}
