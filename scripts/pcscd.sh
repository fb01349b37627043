#!/usr/bin/env bash
# scripts/pcscd.sh start|stop: makes sure a pcscd with the vpcd virtual readers answers on
# /run/pcscd/pcscd.comm. `start` prints "started" when it started pcscd itself; `stop` stops
# only a pcscd that `start` started (its pid is kept in /run/pcscd/jpki-started.pid).
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
RUN=/run/pcscd
OURS=$RUN/jpki-started.pid
has_vpcd() { opensc-tool -l 2>/dev/null | grep -q "Virtual PCD"; }
answers() { [ -S "$RUN/pcscd.comm" ] && ! opensc-tool -l 2>&1 | grep -q "No smart card readers found\|Service not available\|SCardEstablishContext"; }
case "${1:-}" in
  start)
    has_vpcd && exit 0
    if [ -S "$RUN/pcscd.comm" ] && [ -f "$RUN/pcscd.pid" ] && answers; then
      # A pcscd serves this socket without the vpcd driver (installed after it started):
      # restart that one (the pid in its own pid file, never another namespace's pcscd).
      echo "restarting pcscd to load the vpcd virtual reader driver" >&2
      $SUDO kill "$(cat "$RUN/pcscd.pid")" || true
      sleep 0.5
    fi
    $SUDO mkdir -p "$RUN"
    $SUDO sh -c "pcscd -f >/dev/null 2>&1 & echo \$! > $OURS"
    for _ in $(seq 50); do has_vpcd && break; sleep 0.1; done
    has_vpcd || { echo "pcscd started but shows no Virtual PCD reader" >&2; exit 1; }
    echo started
    ;;
  stop)
    if [ -f "$OURS" ]; then
      $SUDO kill "$(cat "$OURS")" 2>/dev/null || true
      $SUDO rm -f "$OURS"
    fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
