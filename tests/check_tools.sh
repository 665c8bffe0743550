#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The tools and programs a person runs, given bad input: each must exit
# non-zero with one clear sentence naming what is wrong (and --help must
# succeed). Nothing here needs io_uring or a network.
# usage: check_tools.sh SOURCE_DIR BUILD_DIR
set -u
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect CODE WORDS CMD...: CMD exits with CODE ("nz": any non-zero) and its
# output contains WORDS.
expect() {
	local code=$1 words=$2
	shift 2
	"$@" >"$tmp/out" 2>&1
	local rc=$?
	if [ "$code" = nz ]; then
		[ $rc -ne 0 ] || fail "$* exited 0"
	else
		[ $rc -eq "$code" ] || fail "$* exited $rc, not $code: $(head -c 400 "$tmp/out")"
	fi
	grep -qF -- "$words" "$tmp/out" || fail "$*: expected '$words' in: $(head -c 400 "$tmp/out")"
	grep -q "Traceback\|unbound variable\|invalid floating point" "$tmp/out" &&
		fail "$*: not one clear sentence: $(head -c 400 "$tmp/out")"
	return 0
}

expect 2 "--runs takes a whole number" "$src/bench/io" --runs
expect 2 "not 'abc'" "$src/bench/io" --quick --runs abc
expect 2 "unknown argument '--frob'" "$src/bench/io" --frob
expect 2 "cannot write results to /proc/nope" "$src/bench/gather" --out /proc/nope/x
expect 2 "unknown mode 'fibers'" "$src/bench/gather" --modes fibers
expect 2 "usage: bench/ab" "$src/bench/ab"
expect 2 "'/no/such' is not a build directory" "$src/bench/ab" /no/such "$build"
expect 2 "--rounds takes a positive number" "$src/bench/ab" "$build" "$build" --rounds 0
expect 2 "is missing: build it with --buildtype=release" "$src/bench/ab" "$tmp" "$tmp"
expect nz "/no/such/cmd: no such command" "$src/tools/syscount" --tasks 2 -- /no/such/cmd
expect 2 "whole number >= 1, got '0'" "$src/tools/syscount" --tasks 0 -- true
expect 2 "tools/test: unknown argument '--frob'" "$src/tools/test" --frob

if [ -x "$build/bench/bench_switch" ]; then
	expect 0 "usage: bench_switch" "$build/bench/bench_switch" --help
	expect 2 "YIELDS_PER_FIBER must be a whole number" "$build/bench/bench_switch" abc
	expect 2 "N must be a whole number >= 0, not '-5'" "$build/bench/bench_tasks" sleep weft -5
	expect 2 "--ms needs a value" "$build/bench/bench_tasks" sleep weft 5 --ms
	expect 0 "usage: bench_tasks" "$build/bench/bench_tasks" --help
	expect 2 "DEPTH must be a whole number >= 0, not 'x'" "$build/bench/bench_io" nop weft - x 5
fi
if [ -x "$build/examples/weft_cp" ]; then
	expect 0 "usage: weft_cp SRC DST" "$build/examples/weft_cp" --help
	expect 2 "Give --tasks N" "$src/tools/syscount" -- "$build/examples/hello_gather"
	expect 2 "usage: weft_cp SRC DST" "$build/examples/weft_cp" onlyone
	expect 0 "usage: echo_server" "$build/examples/echo_server" --help
	expect 2 "usage: echo_server" "$build/examples/echo_server" notaport
	expect 0 "usage: http_server" "$build/examples/http_server" --help
	# weft_cp's own errors name the path; they need a loop, so only where one
	# can be made (elsewhere it says why, which check_examples.sh covers).
	if "$build/examples/weft_cp" /etc/hostname "$tmp/probe" 2>/dev/null; then
		expect 1 "cannot copy a directory: $tmp (weft_cp copies regular files)" \
			"$build/examples/weft_cp" "$tmp" "$tmp/x"
		expect 1 "cannot copy a character device: /dev/zero" \
			"$build/examples/weft_cp" /dev/zero "$tmp/x"
		expect 1 "cannot open $tmp/missing: No such file or directory" \
			"$build/examples/weft_cp" "$tmp/missing" "$tmp/x"
		[ -e "$tmp/x" ] && fail "weft_cp left $tmp/x behind"
	fi
fi
echo "tools ok"
