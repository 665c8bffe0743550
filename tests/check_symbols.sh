#!/bin/sh
# Every function and data symbol libweft.so defines must be weft_*.
# usage: check_symbols.sh NM LIBRARY
set -eu
nm=$1
lib=$2
# nm -D --defined-only: "address type name"; the version node WEFT_0.1 is an
# absolute symbol (type A) that the version script itself adds.
leaks=$("$nm" -D --defined-only "$lib" | awk '$2 != "A" && $3 !~ /^weft_/ { print $3 }')
count=$("$nm" -D --defined-only "$lib" | awk '$3 ~ /^weft_/' | wc -l)
if [ -n "$leaks" ]; then
	echo "symbols that are not weft_*:" >&2
	echo "$leaks" >&2
	exit 1
fi
if [ "$count" -lt 10 ]; then
	echo "only $count weft_* symbols exported from $lib" >&2
	exit 1
fi
echo "$count symbols, all weft_*"
