#!/usr/bin/env bash
# Windows and macOS (issue 11; docs/windows.md, docs/macos.md), from Linux:
#   1. the module as a Windows DLL (x86_64-pc-windows-gnu, mingw-w64) exporting exactly the three
#      PKCS#11 entry symbols;
#   2. the in-process test suite (FFI, hostile callers, backend, virtual card) as a Windows
#      executable under Wine (cargo runner scripts/wine-run.sh);
#   3. clippy for Windows;
#   4. `cargo check` of the module and the `jpki` command for both macOS targets.
# Installs what it needs (Debian packages wine64, gcc-mingw-w64-x86-64; rustup targets).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
win=x86_64-pc-windows-gnu
rustup target add "$win" aarch64-apple-darwin x86_64-apple-darwin >/dev/null 2>&1 ||
  rustup target add "$win" aarch64-apple-darwin x86_64-apple-darwin
t0=$(date +%s)
cargo build --lib --target "$win"
dll=${CARGO_TARGET_DIR:-target}/$win/debug/jpki_pkcs11.dll
exports=$(x86_64-w64-mingw32-objdump -p "$dll" |
  sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' | sed -n 's/^[[:space:]]*\[ *[0-9]*\] //p' | sort | tr '\n' ' ')
want="C_GetFunctionList C_GetInterface C_GetInterfaceList "
if [ "$exports" != "$want" ]; then
  echo "cross.sh: $dll exports [$exports], want [$want]" >&2
  exit 1
fi
echo "cross.sh: $dll exports exactly: $exports"
cargo test --lib --target "$win"
cargo clippy --workspace --all-targets --target "$win" -- -D warnings
t1=$(date +%s)
for mac in aarch64-apple-darwin x86_64-apple-darwin; do
  cargo check --workspace --target "$mac"
done
t2=$(date +%s)
echo "cross.sh: Windows build, tests under Wine and clippy $((t1 - t0)) s; macOS checks $((t2 - t1)) s"
