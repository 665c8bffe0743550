#!/usr/bin/env bash
# Build tests/switch_selftest.c with the aarch64 assembly switch using a cross
# compiler and run it under qemu-user: the aarch64 switch is checked even on
# an x86-64 machine. Skips (77) when aarch64-linux-gnu-gcc or qemu-aarch64 is
# missing (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user).
# usage: check_switch_cross.sh SOURCE_ROOT
set -eu
root=$1
cc=aarch64-linux-gnu-gcc
if ! command -v $cc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
	echo "skipping: needs $cc and qemu-aarch64 (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user)"
	exit 77
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
$cc -O2 -Wall -Wextra -Werror -I"$root/src" "$root/tests/switch_selftest.c" \
	"$root/src/arch/asm_ctx.c" "$root/src/arch/aarch64/switch.S" -o "$out/selftest" -lm
qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/selftest"
