#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the demo and the tests need (skips what is installed).
# The lists are scripts/deps/*.txt, one package a line (core.txt: the module and the virtual
# card; one file per client application tested end to end).
set -euo pipefail
cd "$(dirname "$0")"
mapfile -t PKGS < <(cat deps/*.txt | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' | sort -u)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "installing: ${missing[*]}" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
