#!/bin/sh
# One version everywhere: meson's project version, the newest symbol node of
# src/weft.map (WEFT_<major>.<minor>), the newest release heading of
# CHANGELOG.md, the header's WEFT_VERSION_* macros, README's status line, and
# what `pkg-config --modversion weft` says of an install of this build.
# usage: check_version.sh SOURCE_ROOT BUILD_ROOT PROJECT_VERSION
set -eu
src=$1
build=$2
version=$3
fail=0
differs() {
	echo "version: $1 says '$2', meson.build says '$version'" >&2
	fail=1
}

majmin=${version%.*}
node=$(sed -n 's/^\(WEFT_[0-9][0-9]*\.[0-9][0-9]*\) *{.*/\1/p' "$src/src/weft.map" | sort -V | tail -n 1)
[ "$node" = "WEFT_$majmin" ] || differs "src/weft.map's newest node" "$node"

# The first release heading is the newest, and none above it is newer.
heading=$(sed -n 's/^## \([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\)\([^0-9.].*\)*$/\1/p' \
	"$src/CHANGELOG.md" | head -n 1)
highest=$(sed -n 's/^## \([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\)\([^0-9.].*\)*$/\1/p' \
	"$src/CHANGELOG.md" | sort -V | tail -n 1)
[ "$heading" = "$version" ] || differs "CHANGELOG.md's first release heading" "$heading"
[ "$highest" = "$version" ] || differs "CHANGELOG.md's highest release heading" "$highest"

header=$(for k in MAJOR MINOR PATCH; do
	sed -n "s/^#define WEFT_VERSION_$k \([0-9][0-9]*\)$/\1/p" "$src/include/weft.h"
done | paste -sd.)
[ "$header" = "$version" ] || differs "include/weft.h's WEFT_VERSION_* macros" "$header"

readme=$(sed -n 's/^Status: \*\*\([0-9.]*\)\*\*.*/\1/p' "$src/README.md" | head -n 1)
[ "$readme" = "$version" ] || differs "README.md's status line" "$readme"

if command -v pkg-config >/dev/null 2>&1; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	meson install -C "$build" --destdir "$tmp/root" --no-rebuild >/dev/null
	pc=$(find "$tmp/root" -name weft.pc | head -n 1)
	if [ -z "$pc" ]; then
		echo "version: weft.pc was not installed" >&2
		fail=1
	else
		installed=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --modversion weft)
		[ "$installed" = "$version" ] || differs "pkg-config --modversion weft (installed)" "$installed"
	fi
else
	echo "pkg-config is not installed: the installed weft.pc is not checked"
fi

[ $fail = 0 ] || exit 1
echo "version: $version everywhere (meson.build, WEFT_$majmin, CHANGELOG.md, weft.h, README.md, weft.pc)"
