#!/usr/bin/env bash
# The main job on the virtual My Number Card, end to end: build the module, start pcscd and the
# virtual card, list both tokens, sign with both keys through pkcs11-tool, and verify each
# signature with openssl against the card's certificate. Stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release
MOD=$PWD/target/release/libjpki_pkcs11.so
work=$(mktemp -d)
started=$(scripts/pcscd.sh start)
vcard=""
cleanup() {
  if [ -n "$vcard" ]; then kill "$vcard" 2>/dev/null || true; fi
  if [ "$started" = started ]; then scripts/pcscd.sh stop; fi
  rm -rf "$work"
}
trap cleanup EXIT
target/release/jpki virtual-card --state "$work/card" --log "$work/apdu.log" >/dev/null &
vcard=$!
for _ in $(seq 100); do
  pkcs11-tool --module "$MOD" -L 2>/dev/null | grep -q "JPKI User Authentication" && break
  sleep 0.1
done

step() { printf '\n== %s\n' "$*"; }
step "Tokens (pkcs11-tool -L)"
pkcs11-tool --module "$MOD" -L

echo "a document to sign" > "$work/msg"
step "Sign with the user-authentication key (PIN 1234), RSA-PSS SHA-256"
pkcs11-tool --module "$MOD" --token-label "JPKI User Authentication" --login --pin 1234 \
  --sign --id 01 -m SHA256-RSA-PKCS-PSS --mgf MGF1-SHA256 --salt-len 32 \
  -i "$work/msg" -o "$work/auth.sig"
openssl x509 -inform DER -in "$work/card/auth.crt" -pubkey -noout > "$work/auth.pub"
openssl dgst -sha256 -verify "$work/auth.pub" -sigopt rsa_padding_mode:pss \
  -sigopt rsa_pss_saltlen:32 -signature "$work/auth.sig" "$work/msg"

step "Sign with the digital-signature key (password JPKITEST1), PKCS#1 v1.5 SHA-256"
pkcs11-tool --module "$MOD" --token-label "JPKI Digital Signature" --login --pin JPKITEST1 \
  --sign --id 02 -m SHA256-RSA-PKCS -i "$work/msg" -o "$work/sign.sig"
openssl x509 -inform DER -in "$work/card/sign.crt" -pubkey -noout > "$work/sign.pub"
openssl dgst -sha256 -verify "$work/sign.pub" -signature "$work/sign.sig" "$work/msg"

step "APDUs the virtual card answered: $(grep -vc '^#' "$work/apdu.log")"
