#!/bin/sh
# The two ways a server links weft, from outside this build:
#   1. installed, with pkg-config: `pkg-config --libs weft-static` gives a
#      binary that does not need libweft.so;
#   2. as a meson subproject: only the library is built (no tests, benchmarks
#      or examples, so no cmocka), and the parent's `meson test` has no weft tests.
# usage: check_packaging.sh SOURCE_ROOT BUILD_ROOT SANITIZE
set -eu
src=$1
build=$2
if [ "$3" != none ]; then
	echo "skipped: a sanitizer build's archive needs the sanitizer runtime in the app"
	exit 77
fi
for t in pkg-config meson ninja cc; do
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

# 1. installed, static through weft-static.pc
meson install -C "$build" --destdir "$tmp/root" --no-rebuild >/dev/null
pc=$(find "$tmp/root" -name weft-static.pc | head -n 1)
[ -n "$pc" ] || { echo "weft-static.pc was not installed" >&2; exit 1; }
echo "installed: ${pc#"$tmp/root"}"
flags=$(PKG_CONFIG_SYSROOT_DIR="$tmp/root" PKG_CONFIG_PATH=$(dirname "$pc") \
	pkg-config --cflags --libs weft-static)
# shellcheck disable=SC2086
cc -o "$tmp/app-static" "$tmp/app.c" $flags
if ldd "$tmp/app-static" | grep -q libweft; then
	echo "the weft-static.pc route still needs libweft.so:" >&2
	ldd "$tmp/app-static" >&2
	exit 1
fi
"$tmp/app-static"

# 2. a meson subproject
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
echo "packaging: static pkg-config route and meson subproject both work"
