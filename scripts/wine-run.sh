#!/usr/bin/env bash
# cargo's runner for x86_64-pc-windows-gnu (.cargo/config.toml): runs a Windows executable built
# by `cargo test --target x86_64-pc-windows-gnu` under Wine (Debian package wine64).
#
# Beside the executable it first builds, with mingw-w64, two test-only helpers (never shipped):
#   bcryptprimitives.dll  ProcessPrng, which Rust's std imports and Debian 12's Wine 8.0 lacks;
#   fake-pinentry.exe     the scripted pinentry of the tests (src/pinentry.rs `tests::scripted`).
# With JPKI_TEST_WINSCARD_DLL set (scripts/cross.sh: the test-only WinSCard built from
# scripts/windows/winscard/), that DLL goes beside the executable as winscard.dll and is loaded
# instead of Wine's stub; without it, Wine's own (whose SCardEstablishContext always fails).
# The Wine prefix lives in the target directory (target/x86_64-pc-windows-gnu/wine-prefix).
set -euo pipefail
exe=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
dir=$(cd "$(dirname "$exe")" && pwd)
cc=${MINGW_CC:-x86_64-w64-mingw32-gcc}
build() {
  local out=$dir/$1 src=$here/windows/$2
  shift 2
  if [ ! -e "$out" ] || [ "$src" -nt "$out" ]; then
    "$cc" -O2 -s -Wall -Werror -o "$out.tmp" "$src" "$@"
    mv "$out.tmp" "$out"
  fi
}
build bcryptprimitives.dll bcryptprimitives.c -shared -ladvapi32
build fake-pinentry.exe fake-pinentry.c
# target/<triple>/<profile>/deps/x.exe → target/<triple>/wine-prefix
prefix=$(cd "$dir/../.." 2>/dev/null && pwd)/wine-prefix
export WINEPREFIX=${WINEPREFIX:-$prefix}
export WINEDEBUG=${WINEDEBUG:--all}
# Our bcryptprimitives.dll over Wine's builtin; no Mono or Gecko installer on prefix creation.
overrides="bcryptprimitives=n,b;mscoree=;mshtml="
if [ -n "${JPKI_TEST_WINSCARD_DLL:-}" ]; then
  cp "$JPKI_TEST_WINSCARD_DLL" "$dir/winscard.dll.tmp"
  mv "$dir/winscard.dll.tmp" "$dir/winscard.dll"
  overrides="$overrides;winscard=n"
else
  overrides="$overrides;winscard=b"
fi
export WINEDLLOVERRIDES="$overrides${WINEDLLOVERRIDES:+;$WINEDLLOVERRIDES}"
wine=$(command -v wine64 || command -v wine || echo /usr/lib/wine/wine64)
exec "$wine" "$exe" "$@"
