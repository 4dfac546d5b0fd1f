#!/usr/bin/env bash
# Installs shoal, shoald and shoald's systemd unit from built binaries (`make install`
# builds them in release mode first).
#   scripts/install.sh [--from DIR] [--prefix DIR] [--destdir DIR]   (install)
#   scripts/install.sh --uninstall [--prefix DIR] [--destdir DIR]    (remove them again)
# --from: where the binaries are (target/release); --prefix: /usr/local; --destdir: a
# staging root for packagers (the unit still names PREFIX/bin/shoald).
set -euo pipefail
cd "$(dirname "$0")/.."
from=target/release prefix=/usr/local destdir="" uninstall=0
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --destdir) destdir=$2; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    *) echo "install.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
case "$prefix" in /*) ;; *) echo "install.sh: --prefix must be an absolute path" >&2; exit 2 ;; esac
bindir=$prefix/bin
unitdir=$prefix/lib/systemd/system
if [ "$uninstall" = 1 ]; then
  rm -f "$destdir$bindir/shoal" "$destdir$bindir/shoald" "$destdir$unitdir/shoald.service"
  echo "removed shoal, shoald and shoald.service from $destdir$prefix (state in /var/lib/shoal is kept)"
  exit 0
fi
for b in shoal shoald; do
  [ -x "$from/$b" ] || { echo "install.sh: $from/$b not found: build first (make install does)" >&2; exit 1; }
done
install -D -m 0755 "$from/shoal" "$destdir$bindir/shoal"
install -D -m 0755 "$from/shoald" "$destdir$bindir/shoald"
mkdir -p "$destdir$unitdir"
unit=$(<contrib/systemd/shoald.service)
printf '%s\n' "${unit//@BINDIR@/$bindir}" > "$destdir$unitdir/shoald.service.tmp"
chmod 0644 "$destdir$unitdir/shoald.service.tmp"
mv "$destdir$unitdir/shoald.service.tmp" "$destdir$unitdir/shoald.service"
echo "installed $destdir$bindir/shoal, $destdir$bindir/shoald and $destdir$unitdir/shoald.service"
command -v ip >/dev/null || echo "note: shoald needs iproute2's ip at run time" >&2
if [ -z "$destdir" ] && [ -d /run/systemd/system ]; then
  echo "start it: systemctl daemon-reload && systemctl enable --now shoald"
fi
