#!/bin/sh
# Run a command with the virtual My Number Card inserted in pcscd's vpcd reader.
#
#   scripts/with-virtual-card.sh CMD [ARGS...]
#
# Starts pcscd if it is not running (and stops it afterwards), starts `jpki virtual-card`
# (target/debug/jpki, or $JPKI_BIN; nothing is built) with a fresh temporary card, waits until
# pcscd sees the card, runs CMD, then stops what it started. Exits with CMD's exit code.
# CMD sees JPKI_VCARD_STATE (the card's directory: certificates, keys, state.txt),
# JPKI_VCARD_LOG (the APDU log) and JPKI_VCARD_READER (the reader name).
# $JPKI_VCARD_PORT picks the vpcd port (35963 = "Virtual PCD 00 00", 35964 = "... 00 01").
set -eu

if [ $# -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${JPKI_BIN:-$root/target/debug/jpki}
port=${JPKI_VCARD_PORT:-35963}
reader="Virtual PCD 00 0$((port - 35963))"
if [ ! -x "$bin" ]; then
    echo "$0: $bin not found: run 'cargo build' first or set JPKI_BIN" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/jpki-vcard.XXXXXX")
card_pid=
pcscd_pid=

cleanup() {
    if [ -n "$card_pid" ]; then
        kill "$card_pid" 2>/dev/null || true
        wait "$card_pid" 2>/dev/null || true
    fi
    if [ -n "$pcscd_pid" ]; then
        kill "$pcscd_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! pgrep -x pcscd >/dev/null 2>&1; then
    if ! pcscd; then
        echo "$0: cannot start pcscd (Debian packages pcscd and vsmartcard-vpcd; needs root)" >&2
        exit 2
    fi
    i=0
    while ! pcscd_pid=$(pgrep -x -n pcscd); do
        i=$((i + 1))
        [ $i -lt 50 ] || { echo "$0: pcscd did not start" >&2; exit 2; }
        sleep 0.1
    done
fi

"$bin" virtual-card --state "$work/card" --log "$work/apdu.log" --port "$port" \
    >"$work/stdout" &
card_pid=$!

# Wait until the card process is connected to vpcd, then until pcscd lists the card.
i=0
until grep -q connected "$work/stdout" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -ge 100 ] || ! kill -0 "$card_pid" 2>/dev/null; then
        echo "$0: the virtual card did not connect to vpcd on port $port" >&2
        exit 2
    fi
    sleep 0.1
done
if command -v opensc-tool >/dev/null 2>&1; then
    i=0
    until opensc-tool --list-readers 2>/dev/null | grep "$reader" | grep -q Yes; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "$0: pcscd does not see the card in $reader" >&2; exit 2; }
        sleep 0.1
    done
else
    sleep 1
fi

export JPKI_VCARD_STATE="$work/card" JPKI_VCARD_LOG="$work/apdu.log" JPKI_VCARD_READER="$reader"
status=0
"$@" || status=$?
exit $status
