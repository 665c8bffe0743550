#!/bin/sh
# The ways a program links weft, from outside this build:
#   1. installed, with pkg-config: `pkg-config --static --libs weft-static`
#      gives a binary that needs neither libweft.so nor liburing.so (where
#      liburing's archive was found when weft was configured), and README's
#      server example compiles against the install with -Werror;
#   2. installed, with CMake: pkg_check_modules(... IMPORTED_TARGET
#      weft-static), the same binary (skipped where cmake is not installed);
#   3. as a meson subproject: only the library is built (no tests, benchmarks
#      or examples, so no cmocka), and the parent's `meson test` has no weft tests.
# usage: check_packaging.sh SOURCE_ROOT BUILD_ROOT SANITIZE
set -eu
src=$1
build=$2
if [ "$3" != none ]; then
	echo "skipped: a sanitizer build's archive needs the sanitizer runtime in the app"
	exit 77
fi
for t in pkg-config meson ninja cc readelf; do
	command -v "$t" >/dev/null 2>&1 || { echo "skipped: $t is not installed"; exit 77; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/app.c" <<'C'
#include <weft.h>
#include <stdio.h>

static int hello(void *arg)
{
	(void)arg;
	return weft_sleep(WEFT_MSEC);
}

int main(void)
{
	int rc = weft_main(hello, NULL);

	printf("weft %s: %d\n", weft_version(), rc);
	return rc == 0 || rc == -ENOSYS || rc == -EPERM ? 0 : 1;
}
C
sed -i 's/#include <stdio.h>/#include <stdio.h>\n#include <errno.h>/' "$tmp/app.c"

# 1. installed, static through weft-static.pc. The install goes into a
# temporary root, so pkg-config is told where its prefix landed.
meson install -C "$build" --destdir "$tmp/root" --no-rebuild >/dev/null
pc=$(find "$tmp/root" -name weft-static.pc | head -n 1)
[ -n "$pc" ] || { echo "weft-static.pc was not installed" >&2; exit 1; }
echo "installed: ${pc#"$tmp/root"}"
prefix=$(sed -n 's/^prefix=//p' "$pc")
pkgconf() {
	PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --define-variable=prefix="$tmp/root$prefix" "$@"
}
# A binary linked through it must need no libweft.so, nor liburing.so where
# weft-static.pc names liburing's archive.
no_shared() {
	needed=$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
	bad=$(echo "$needed" | grep -E '^libweft' || true)
	if grep -q 'liburing\.a' "$pc"; then
		bad=$bad$(echo "$needed" | grep -E '^liburing' || true)
	fi
	[ -z "$bad" ] || { echo "$2 still needs $bad:" >&2; echo "$needed" >&2; exit 1; }
}
flags=$(pkgconf --static --cflags --libs weft-static)
# shellcheck disable=SC2086
cc -o "$tmp/app-static" "$tmp/app.c" $flags
no_shared "$tmp/app-static" "the weft-static.pc route"
"$tmp/app-static"
# README's server example, as it stands, builds against the install.
sed -n '/^<!-- the server example/,/^```$/p' "$src/README.md" | sed '1,2d;$d' >"$tmp/server.c"
grep -q 'weft_signal_wait' "$tmp/server.c" || { echo "README.md's server example is missing" >&2; exit 1; }
# shellcheck disable=SC2086
cc -Wall -Wextra -Werror -o "$tmp/server" "$tmp/server.c" $flags

# 2. installed, through CMake's pkg_check_modules(... IMPORTED_TARGET)
if command -v cmake >/dev/null 2>&1; then
	mkdir -p "$tmp/cmake"
	cp "$tmp/app.c" "$tmp/cmake/app.c"
	cat >"$tmp/cmake/CMakeLists.txt" <<'M'
cmake_minimum_required(VERSION 3.13)
project(app C)
find_package(PkgConfig REQUIRED)
pkg_check_modules(WEFT REQUIRED IMPORTED_TARGET weft-static)
add_executable(app app.c)
target_link_libraries(app PRIVATE PkgConfig::WEFT)
M
	PKG_CONFIG_PATH=$(dirname "$pc") cmake -S "$tmp/cmake" -B "$tmp/cmake/b" \
		-DPKG_CONFIG_ARGN="--define-variable=prefix=$tmp/root$prefix" \
		>"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log" >&2; exit 1; }
	cmake --build "$tmp/cmake/b" >"$tmp/cmake-build.log" 2>&1 ||
		{ cat "$tmp/cmake-build.log" >&2; exit 1; }
	no_shared "$tmp/cmake/b/app" "the CMake IMPORTED_TARGET route"
	"$tmp/cmake/b/app"
	cmake_said="CMake's IMPORTED_TARGET, "
else
	echo "cmake is not installed: the CMake route is not checked"
	cmake_said=""
fi

# 3. a meson subproject
mkdir -p "$tmp/parent/subprojects"
ln -s "$src" "$tmp/parent/subprojects/weft"
cp "$tmp/app.c" "$tmp/parent/app.c"
cat >"$tmp/parent/meson.build" <<'M'
project('parent', 'c')
weft_dep = dependency('weft', fallback : ['weft', 'weft_dep'])
executable('app', 'app.c', dependencies : weft_dep)
M
meson setup "$tmp/parent/b" "$tmp/parent" >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log" >&2; exit 1; }
if grep -qi cmocka "$tmp/setup.log"; then
	echo "the subproject looked for cmocka:" >&2
	grep -i cmocka "$tmp/setup.log" >&2
	exit 1
fi
tests=$(meson introspect --tests "$tmp/parent/b")
[ "$tests" = "[]" ] || { echo "the subproject added tests to the parent: $tests" >&2; exit 1; }
ninja -C "$tmp/parent/b" >/dev/null
targets=$(ninja -C "$tmp/parent/b" -t targets all | grep -c -E 'test_|bench_|examples/' || true)
[ "$targets" = 0 ] || { echo "the subproject built $targets test, bench or example targets" >&2; exit 1; }
"$tmp/parent/b/app"
echo "packaging: the static pkg-config route, README's server, ${cmake_said}and the meson subproject work"
