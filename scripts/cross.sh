#!/usr/bin/env bash
# Windows and macOS (issue 11; docs/windows.md, docs/macos.md), from Linux:
#   1. the module as a Windows DLL (x86_64-pc-windows-gnu, mingw-w64) exporting exactly the three
#      PKCS#11 entry symbols;
#   2. the in-process test suite (FFI, hostile callers, backend, virtual card) as a Windows
#      executable under Wine (cargo runner scripts/wine-run.sh);
#   3. the PC/SC transport (crates/card/src/pcsc.rs) on WinSCard under Wine: the test-only
#      winscard.dll (scripts/windows/winscard/) with the virtual card (`jpki virtual-card`, a
#      Linux process started here) in its reader, crates/card/tests/winscard.rs once per card
#      (healthy, `--fault no-other-apps`, `--fault remove-after-verify`);
#   4. the module's PKCS#11 entry points over the same WinSCard: tests/winscard_module.rs loads
#      the DLL of step 1 (C_GetFunctionList, then the function list) with a healthy virtual card;
#   5. clippy for Windows (the workspace and the test-only WinSCard);
#   6. `cargo check` of the module and the `jpki` command for both macOS targets.
# Installs what it needs (Debian packages wine64, gcc-mingw-w64-x86-64; rustup targets).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
win=x86_64-pc-windows-gnu
rustup target add "$win" aarch64-apple-darwin x86_64-apple-darwin >/dev/null 2>&1 ||
  rustup target add "$win" aarch64-apple-darwin x86_64-apple-darwin
target=${CARGO_TARGET_DIR:-target}
# Port of the test-only WinSCard's reader (not vpcd's 35963/35964, which pcscd owns).
winscard_port=${JPKI_TEST_WINSCARD_PORT:-36111}
# Port of the module's test over WinSCard (tests/winscard_module.rs).
module_port=${JPKI_TEST_WINSCARD_MODULE_PORT:-36120}

# The PC/SC transport under Wine: one run of crates/card/tests/winscard.rs per virtual card.
winscard() {
  cargo fmt --manifest-path scripts/windows/winscard/Cargo.toml --check
  cargo build --manifest-path scripts/windows/winscard/Cargo.toml --target "$win" \
    --target-dir "$target/winscard-dll"
  local dll
  dll=$(cd "$target/winscard-dll/$win/debug" && pwd)/winscard.dll
  cargo build -p jpki-cli --bin jpki
  cargo test -p jpki-card --test winscard --target "$win" --no-run
  # The DLL exports exactly what the test executable (the pcsc crate) imports from WinSCard.
  local exe exports imports
  exe=$(ls -t "$target/$win/debug/deps/"winscard-*.exe | head -n 1)
  exports=$(x86_64-w64-mingw32-objdump -p "$dll" |
    sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' | sed -n 's/^[[:space:]]*\[ *[0-9]*\] //p' | sort)
  imports=$(x86_64-w64-mingw32-objdump -p "$exe" |
    sed -n '/DLL Name: [Ww]in[Ss][Cc]ard.dll/,/^$/p' | awk 'NR > 2 && NF >= 3 { print $3 }' | sort)
  if [ -z "$exports" ] || [ "$exports" != "$imports" ]; then
    echo "cross.sh: winscard.dll exports [$exports], the test imports [$imports]" >&2
    exit 1
  fi
  local scenario
  # Globals: the EXIT trap stops the card if a test fails (set -e).
  wsc_tmp=$(mktemp -d /tmp/jpki-winscard.XXXXXX)
  wsc_card=
  trap 'stop_card; rm -rf "$wsc_tmp"' EXIT
  for scenario in healthy no-other-apps remove-after-verify; do
    local faults=()
    [ "$scenario" = healthy ] || faults=(--fault "$scenario")
    : >"$wsc_tmp/$scenario.log"
    "$target/debug/jpki" virtual-card --state "$wsc_tmp/card" --log "$wsc_tmp/$scenario.log" \
      --port "$winscard_port" "${faults[@]}" >"$wsc_tmp/$scenario.out" 2>&1 &
    wsc_card=$!
    # Wine sees the Linux file system as drive Z:.
    JPKI_TEST_WINSCARD_DLL=$dll JPKI_TEST_WINSCARD_PORT=$winscard_port \
      JPKI_TEST_WINSCARD_CARD=$scenario JPKI_TEST_WINSCARD_LOG="Z:${wsc_tmp//\//\\}\\$scenario.log" \
      cargo test -p jpki-card --test winscard --target "$win" ||
      { echo "cross.sh: WinSCard test failed with the $scenario card; its log:" >&2; cat "$wsc_tmp/$scenario.log" >&2; return 1; }
    stop_card
  done
  # The module's PKCS#11 entry points over the same WinSCard (tests/winscard_module.rs): the DLL
  # built above by `cargo build --lib` (checked for its exports, no test hook), loaded by the
  # test as an application loads it; one more healthy card, on its own port.
  t_mod=$(date +%s)
  cargo build --lib --target "$win"
  cp "$target/$win/debug/jpki_pkcs11.dll" "$wsc_tmp/jpki_pkcs11.dll"
  if grep -q use_card_system "$wsc_tmp/jpki_pkcs11.dll"; then
    echo "cross.sh: $target/$win/debug/jpki_pkcs11.dll has the test hook (feature test-hooks)" >&2
    exit 1
  fi
  : >"$wsc_tmp/module.log"
  "$target/debug/jpki" virtual-card --state "$wsc_tmp/card" --log "$wsc_tmp/module.log" \
    --port "$module_port" >"$wsc_tmp/module.out" 2>&1 &
  wsc_card=$!
  JPKI_TEST_WINSCARD_DLL=$dll JPKI_TEST_WINSCARD_PORT=$module_port \
    TEST_PKCS11_MODULE="Z:${wsc_tmp//\//\\}\\jpki_pkcs11.dll" \
    cargo test --test winscard_module --target "$win" ||
    { echo "cross.sh: the module's test over WinSCard failed; the card's log:" >&2; cat "$wsc_tmp/module.log" >&2; return 1; }
  stop_card
  t_mod=$(($(date +%s) - t_mod))
  rm -rf "$wsc_tmp"
  trap - EXIT
}
stop_card() {
  if [ -n "${wsc_card:-}" ]; then
    kill "$wsc_card" 2>/dev/null || true
    wait "$wsc_card" 2>/dev/null || true
    wsc_card=
  fi
}

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
t_wsc=$(date +%s)
winscard
t_wsc=$(($(date +%s) - t_wsc))
cargo clippy --workspace --all-targets --target "$win" -- -D warnings
cargo clippy --manifest-path scripts/windows/winscard/Cargo.toml --target "$win" \
  --target-dir "$target/winscard-dll" -- -D warnings
t1=$(date +%s)
for mac in aarch64-apple-darwin x86_64-apple-darwin; do
  cargo check --workspace --target "$mac"
done
t2=$(date +%s)
echo "cross.sh: Windows build, tests under Wine and clippy $((t1 - t0)) s (of which the WinSCard" \
  "tests $t_wsc s, the module's among them $t_mod s); macOS checks $((t2 - t1)) s"
