#!/usr/bin/env bash
# scripts/pcscd.sh start|stop: makes sure pcscd runs with the vpcd virtual readers.
# `start` prints "started" if it started pcscd itself (so the caller knows to stop it).
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
has_vpcd() { command -v opensc-tool >/dev/null && opensc-tool -l 2>/dev/null | grep -q "Virtual PCD"; }
case "${1:-}" in
  start)
    if pgrep -x pcscd >/dev/null; then
      if has_vpcd; then exit 0; fi
      # pcscd runs without the vpcd driver (installed after it started): restart it.
      echo "restarting pcscd to load the vpcd virtual reader driver" >&2
      $SUDO pkill -x pcscd || true
      sleep 0.5
    fi
    $SUDO pcscd
    for _ in $(seq 50); do has_vpcd && break; sleep 0.1; done
    has_vpcd || { echo "pcscd started but shows no Virtual PCD reader" >&2; exit 1; }
    echo started
    ;;
  stop)
    $SUDO pkill -x pcscd || true
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
