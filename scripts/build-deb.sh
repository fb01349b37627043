#!/usr/bin/env bash
# Builds the Debian package: target/debian/jpki-pkcs11_<version>_<arch>.deb (path printed last).
#
#   scripts/build-deb.sh              # cargo build --release, then the package
#   scripts/build-deb.sh --no-build   # package the release build already in target/
#
# The files are those of `make install PREFIX=/usr` (module in /usr/lib/<multiarch>/pkcs11/,
# p11-kit module file, the jpki command, its man page and completions, zsh's in Debian's
# vendor-completions), staged with DESTDIR; then the binaries are stripped, the man page and the
# changelog compressed, /usr/share/doc/jpki-pkcs11/ filled from packaging/deb/, the library
# dependencies computed by dpkg-shlibdeps, and the control file written from packaging/deb/control.
# Needs dpkg-dev (dpkg-architecture, dpkg-shlibdeps, dpkg-parsechangelog), make, binutils, gzip.
# No root needed (dpkg-deb --root-owner-group). Honours CARGO_TARGET_DIR and DEB_MAINTAINER.
set -euo pipefail
umask 022
cd "$(dirname "$0")/.."
root=$PWD
pkgdir=$root/packaging/deb
build=yes
case "${1:-}" in
  --no-build) build=no ;;
  "") ;;
  *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
esac

target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target=$root/$target ;; esac
export CARGO_TARGET_DIR=$target

name=jpki-pkcs11
version=$(cargo pkgid -p "$name" | sed 's/.*[#@]//')
changelog_version=$(dpkg-parsechangelog -l "$pkgdir/changelog" -S Version)
if [ "$changelog_version" != "$version" ]; then
  echo "$0: packaging/deb/changelog is at $changelog_version, Cargo.toml at $version:" \
       "add a changelog entry" >&2
  exit 1
fi
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
maintainer=${DEB_MAINTAINER:-$(dpkg-parsechangelog -l "$pkgdir/changelog" -S Maintainer)}
# File times and the gzip headers: the changelog's date, so that a rebuild gives the same package.
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$pkgdir/changelog" -S Timestamp)
export SOURCE_DATE_EPOCH

if [ "$build" = yes ]; then
  make --no-print-directory build PROFILE=release
fi

out=$target/debian
stage=$out/${name}_${version}_${arch}
rm -rf "$stage"
mkdir -p "$stage/DEBIAN"
make --no-print-directory install PROFILE=release DESTDIR="$stage" PREFIX=/usr \
  LIBDIR="/usr/lib/$multiarch" ZSHCOMPDIR=/usr/share/zsh/vendor-completions >/dev/null

module=usr/lib/$multiarch/pkcs11/libjpki_pkcs11.so
# What dh_strip does: no symbol table, no .comment/.note sections (the build id note stays).
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$stage/$module"
strip --remove-section=.comment --remove-section=.note "$stage/usr/bin/jpki"
gzip -9n "$stage/usr/share/man/man1/jpki.1"

doc=$stage/usr/share/doc/$name
install -d "$doc"
gzip -9nc "$pkgdir/changelog" >"$doc/changelog.gz"
install -m 0644 "$pkgdir/README.Debian" "$doc/README.Debian"
# The copyright file lists the crates linked into the binaries (proc macros are not).
crates=$(cargo tree -p jpki-pkcs11 -p jpki-cli -e normal,no-proc-macro --prefix none \
           --format '{p}: {l}' |
         sed 's/ (\*)$//' | grep -v -e '^$' -e ' (/' | sort -u | sed 's/^/  /')
awk -v crates="$crates" '$0 == "@CRATES@" { print crates; next } { print }' \
  "$pkgdir/copyright" >"$doc/copyright"
chmod 0644 "$doc/copyright"

# Library dependencies: dpkg-shlibdeps reads debian/control, so it runs in a scratch directory
# with a minimal one.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$name" "$name" >"$scratch/debian/control"
shlibs=$(cd "$scratch" && dpkg-shlibdeps -O "$stage/$module" "$stage/usr/bin/jpki")
shlibs=${shlibs#shlibs:Depends=}
case "$shlibs" in
  *libpcsclite1*) ;;
  *) echo "$0: dpkg-shlibdeps found no libpcsclite1 dependency: $shlibs" >&2; exit 1 ;;
esac

find "$stage" -depth -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$stage" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) \
  >"$stage/DEBIAN/md5sums"
# Installed-Size in KiB, as dpkg-gencontrol counts it: each file rounded up, one per directory.
installed_size=$(cd "$stage" && find usr \( -type f -printf '%s\n' \) -o \( -type d -printf '1024\n' \) |
  awk '{ kib += int(($1 + 1023) / 1024) } END { print kib }')
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@INSTALLED_SIZE@|$installed_size|" -e "s|@SHLIBS_DEPENDS@|$shlibs|" \
    "$pkgdir/control" >"$stage/DEBIAN/control"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"

deb=$out/${name}_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
