#!/bin/bash
# 3 rounds, configurations interleaved, pinned to CPU 1
cd "$(dirname "$0")/../../../.." # the repository root, wherever it is cloned
for round in 1 2 3; do
 for c in 50 500 5000; do r=$((200000 / c))
  for cfg in "weft auto" "weft off" "weftbuf auto" "weftbuf off" "epoll -"; do
   set -- $cfg
   line=$(WEFT_POLL_FIRST=${2/-/auto} taskset -c 1 build-release/bench/bench_io echo $1 - $c $r)
   echo "round=$round conns=$c mode=$1 poll_first=$2 $line"
  done
 done
done
