#!/usr/bin/env bash
# The whole test suite: unit tests, the module through the real pcscd against the virtual
# My Number Card, pkcs11-tool and OpenSC's module, and the client applications end to end
# (OpenSSL with the libp11 engine, OpenSSH, GnuTLS), then the Windows build and in-process tests
# under Wine and the macOS checks (scripts/cross.sh). Installs the Debian packages it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
started=$(scripts/pcscd.sh start)
cleanup() { if [ "$started" = started ]; then scripts/pcscd.sh stop; fi; }
trap cleanup EXIT
# The workspace: the module's package and the `jpki` command's (cli/); the module's tests run
# target/debug/jpki, which the build step makes.
cargo build --workspace --all-targets
cargo test --workspace --all-targets -- --test-threads=1
# Windows (the DLL, the in-process suite under Wine) and macOS (cargo check): scripts/cross.sh.
scripts/cross.sh
