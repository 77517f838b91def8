#!/usr/bin/env bash
# Builds the Debian package of vxswitch from a built binary (make deb):
#   bash scripts/deb.sh bin/vxswitch   ->  bin/vxswitch_VERSION_ARCH.deb
# with dpkg-deb, no network, reproducibly: every timestamp is the commit's
# (SOURCE_DATE_EPOCH), owners are root, and the same tree and toolchain
# give the same bytes. Sources: packaging/deb/ (control, maintainer
# scripts, sysusers.d, tmpfiles.d, copyright, lintian overrides),
# examples/systemd/ (the unit and the example configuration) and the
# binary itself (the manual page is `vxswitch help -markdown`, the help
# made into a page, through go-md2man).
#
# VERSION: the git tag vX.Y.Z at HEAD gives X.Y.Z-1; commits after it give
# X.Y.Z+gitDATE.N.HASH-1; no tag gives 0.0~gitDATE.HASH-1; a tree with
# uncommitted changes adds +dirty; a hyphen in the tag (v1.2.3-rc1) becomes
# ~ (1.2.3~rc1, before 1.2.3). DEB_VERSION overrides it all.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

bin=${1:-bin/vxswitch}
[ -x "$bin" ] || { echo "deb.sh: $bin is not a built binary (make build)" >&2; exit 1; }
for tool in dpkg-deb go-md2man gzip strip git; do
  command -v "$tool" >/dev/null || { echo "deb.sh: $tool is missing (bash scripts/deps.sh installs it)" >&2; exit 1; }
done

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export TZ=UTC LC_ALL=C.UTF-8
day=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d)

if [ -z "${DEB_VERSION:-}" ]; then
  hash=$(git rev-parse --short=7 HEAD 2>/dev/null || echo unknown)
  if desc=$(git describe --tags --long --match 'v[0-9]*' 2>/dev/null); then
    # vX.Y.Z-N-gHASH
    n=${desc%-g*}; n=${n##*-}
    tag=${desc%-*-g*}; tag=${tag#v}
    if [ "$n" = 0 ]; then upstream=$tag; else upstream="$tag+git$day.$n.$hash"; fi
  else
    upstream="0.0~git$day.$hash"
  fi
  upstream=${upstream//-/\~}  # v1.2.3-rc1 (semver pre-release): 1.2.3~rc1 sorts before 1.2.3
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    upstream="$upstream+dirty"
  fi
  DEB_VERSION="$upstream-1"
fi
if ! dpkg --validate-version "$DEB_VERSION" 2>/dev/null; then
  echo "deb.sh: $DEB_VERSION is not a valid Debian version" >&2
  exit 1
fi

goarch=$(go version -m "$bin" | awk '$1 == "build" && $2 ~ /^GOARCH=/ { sub("GOARCH=", "", $2); print $2 }')
case "$goarch" in
  amd64 | arm64 | riscv64 | s390x) arch=$goarch ;;
  386) arch=i386 ;;
  ppc64le) arch=ppc64el ;;
  *) echo "deb.sh: no Debian architecture for GOARCH=$goarch" >&2; exit 1 ;;
esac
if go version -m "$bin" | grep -q 'build.*CGO_ENABLED=1'; then
  echo "deb.sh: $bin was built with cgo; the package wants CGO_ENABLED=0 (make build)" >&2
  exit 1
fi

pkg=packaging/deb
out=$(dirname "$bin")/vxswitch_${DEB_VERSION}_$arch.deb
root=$(dirname "$bin")/deb-root
modules=$(mktemp)
rm -rf "$root"
trap 'rm -rf "$root" "$modules"' EXIT
doc=$root/usr/share/doc/vxswitch
install -d -m 0755 "$root/DEBIAN" "$root/usr/sbin" "$root/usr/lib/systemd/system" \
  "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" "$root/usr/share/man/man8" \
  "$doc/examples" "$root/usr/share/lintian/overrides"

# The binary, without its symbol table and DWARF (Go keeps what panics and
# profiles need in .gopclntab), as dh_strip would leave it.
install -m 0755 "$bin" "$root/usr/sbin/vxswitch"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/sbin/vxswitch"

# The unit: the example, with the package's binary.
sed 's|/usr/local/bin/vxswitch|/usr/sbin/vxswitch|g' examples/systemd/vxswitch@.service >"$root/usr/lib/systemd/system/vxswitch@.service"
install -m 0644 "$pkg/vxswitch.sysusers" "$root/usr/lib/sysusers.d/vxswitch.conf"
install -m 0644 "$pkg/vxswitch.tmpfiles" "$root/usr/lib/tmpfiles.d/vxswitch.conf"
install -m 0644 examples/systemd/example.toml "$doc/examples/example.toml"
install -m 0644 "$pkg/lintian-overrides" "$root/usr/share/lintian/overrides/vxswitch"

# vxswitch(8): the help of this very binary, as Markdown, through go-md2man.
"$bin" help -markdown -date "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)" | go-md2man | gzip -9n >"$root/usr/share/man/man8/vxswitch.8.gz"

# changelog.Debian: one entry, this build.
maintainer=$(sed -n 's/^Maintainer: //p' "$pkg/control")
{
  echo "vxswitch ($DEB_VERSION) unstable; urgency=medium"
  echo
  echo "  * Built from git commit $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown) ($(git describe --always --dirty 2>/dev/null || echo no git))."
  echo
  echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.Debian.gz"

# copyright: vxswitch, the Go toolchain, and one paragraph per Go module in
# the binary (go version -m), its license read from the module's own file;
# a license this cannot name stops the build.
modcache=$(go env GOMODCACHE)
licenses=()
license_of() { # file -> short names, " and "-joined
  local f=$1 names=()
  grep -q 'Apache License' "$f" && grep -q 'Version 2.0' "$f" && names+=(Apache-2.0)
  grep -q 'Permission is hereby granted, free of charge' "$f" && names+=(Expat)
  if grep -q 'Redistribution and use in source and binary forms' "$f"; then
    if grep -qi 'Neither the name' "$f"; then names+=(BSD-3-Clause); else names+=(BSD-2-Clause); fi
  fi
  grep -q 'Mozilla Public License' "$f" && grep -q '2\.0' "$f" && names+=(MPL-2.0)
  local IFS=' '
  echo "${names[*]}" | sed 's/ / and /g'
}
copyright_of() { # files -> Copyright field lines
  { grep -hiE '^[[:space:]]*copyright[[:space:]]+(\(c\)|©|[0-9])' "$@" || true; } |
    sed -E 's/^[[:space:]]*[Cc]opyright[[:space:]]+(\([cC]\)|©)?[[:space:]]*//; s/[[:space:]]*All rights reserved\.?//I; s/[[:space:]]+$//' |
    awk 'NF && !seen[$0]++'
}
stanza() { # files-pattern copyright-lines license comment
  local first=1
  echo "Files: $1"
  while IFS= read -r l; do
    if [ $first = 1 ]; then echo "Copyright: $l"; first=0; else echo " $l"; fi
  done <<<"$2"
  echo "License: $3"
  echo "Comment: $4"
  echo
}
goroot=$(go env GOROOT)
stanza "go/*" "$(copyright_of "$goroot/LICENSE")" BSD-3-Clause \
  "the Go runtime and standard library, $(go version -m "$bin" | head -1 | awk '{print $2}')" >>"$modules"
licenses+=(BSD-3-Clause)
while read -r mod ver; do
  dir=$modcache/$(printf %s "$mod" | sed 's/[A-Z]/!\L&/g')@$ver
  mapfile -t files < <(find "$dir" -maxdepth 1 -type f \( -iname 'licen[cs]e*' -o -iname 'copying*' \) | sort)
  [ ${#files[@]} -gt 0 ] || { echo "deb.sh: no license file in $dir (go mod download $mod@$ver?)" >&2; exit 1; }
  lic=""
  for f in "${files[@]}"; do
    l=$(license_of "$f")
    [ -n "$l" ] && lic=${lic:+$lic and }$l
  done
  [ -n "$lic" ] || { echo "deb.sh: cannot name the license of $mod ($dir): add it to scripts/deb.sh and packaging/deb/licenses/" >&2; exit 1; }
  for l in ${lic// and / }; do licenses+=("$l"); done
  cr=$(copyright_of "${files[@]}")
  [ -n "$cr" ] || cr="the authors of $mod"
  stanza "$mod/*" "$cr" "$lic" "Go module $mod $ver, linked into /usr/sbin/vxswitch" >>"$modules"
done < <(go version -m "$bin" | awk '$1 == "dep" { if (m != "") print m, v; m = $2; v = $3 } $1 == "=>" { m = $2; v = $3 } END { if (m != "") print m, v }')
{
  sed '/^@MODULES@$/,$d' "$pkg/copyright.in"
  cat "$modules"
  sed '1,/^@MODULES@$/d' "$pkg/copyright.in"
  for l in $(printf '%s\n' "${licenses[@]}" | sort -u); do
    echo
    cat "$pkg/licenses/$l"
  done
} >"$doc/copyright"
chmod 0644 "$doc/copyright"

# Control files.
for s in postinst prerm postrm; do
  install -m 0755 "$pkg/$s" "$root/DEBIAN/$s"
done
# Installed-Size as dpkg-gencontrol counts it: KiB per file, rounded up,
# and one per directory or link; independent of the file system.
size=$(find "$root" -path "$root/DEBIAN" -prune -o -mindepth 1 -printf '%y %s\n' |
  awk '$1 == "f" { s += int(($2 + 1023) / 1024); next } { s += 1 } END { print s }')
sed -e "s/@VERSION@/$DEB_VERSION/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$size/" "$pkg/control" >"$root/DEBIAN/control"
(cd "$root" && find usr -type f | LC_ALL=C sort | xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
rm -f "$out"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
