#!/usr/bin/env bash
# kv_server (examples/kv) as redis clients see it: every command's replies
# and errors diffed against a real redis-server's for the same script; a
# 10,000-deep pipeline; commands cut at every byte boundary; the request
# bounds (--max-bulk, *999999999, $-5, long lines); --maxclients,
# --maxmemory, a slow reader, active expiry; redis-benchmark's default run
# (exit 0 and the final DBSIZE, as redis-server's); SIGTERM with connections
# open; all of it again under --loops 2.
# usage: check_kv.sh BUILD_DIR/examples/kv/kv_server
set -u
kv=$1
if ! command -v redis-cli >/dev/null || ! command -v redis-benchmark >/dev/null; then
	echo "SKIP: redis-cli and redis-benchmark are needed (apt-get install redis-tools)"
	exit 77
fi
command -v python3 >/dev/null || { echo "SKIP: python3 is needed"; exit 77; }
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); }

# start_kv NAME ARGS...: kv_server on a free port; sets $port and $pid.
start_kv() {
	local name=$1
	shift
	"$kv" --port 0 "$@" 2>"$tmp/$name.err" &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do
		port=$(grep -o 'listening on port [0-9]*' "$tmp/$name.err" 2>/dev/null | grep -o '[0-9]*$')
		[ -n "$port" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if grep -q "io_uring\|epoll" "$tmp/$name.err"; then
		echo "SKIP: kv_server cannot make a weft loop here: $(cat "$tmp/$name.err")"
		exit 77
	fi
	fail "kv_server $* did not start: $(cat "$tmp/$name.err")"
}

# stop_kv PID NAME: SIGTERM with a connection open; must exit 0.
stop_kv() {
	exec 9<>"/dev/tcp/127.0.0.1/$2"
	kill -TERM "$1"
	local rc=0
	wait "$1" || rc=$?
	exec 9>&-
	[ "$rc" = 0 ] || fail "kv_server exited $rc on SIGTERM (want 0): $(tail -3 "$tmp/$3.err")"
	ok
}

cat >"$tmp/kvt.py" <<'PY'
import socket, sys, threading, time

def conn(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out

def recv_n(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(min(1 << 20, n - len(buf)))
        if not d:
            break
        buf += d
    return buf

def recv_all(s, timeout=3.0):
    s.settimeout(timeout)
    buf = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return buf, True
            buf += d
    except socket.timeout:
        return buf, False

def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)

def rss(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0

def t_pipeline(port):
    """10,000 commands in one go; replies complete and in order."""
    n = 10000
    req = b"".join(cmd("INCR", "pipe:ctr") if i % 2 else cmd("SET", "pipe:%d" % i, "v%d" % i)
                   for i in range(n)) + b"".join(cmd("GET", "pipe:%d" % i) for i in range(0, n, 2))
    want = b"".join(b":%d\r\n" % ((i + 1) // 2) if i % 2 else b"+OK\r\n" for i in range(n))
    want += b"".join(b"$%d\r\nv%d\r\n" % (len(str(i)) + 1, i) for i in range(0, n, 2))
    s = conn(port)
    t = threading.Thread(target=s.sendall, args=(req,))
    t.start()
    got = recv_n(s, len(want))
    t.join()
    check(got == want, "pipeline of %d: replies differ at byte %d" %
          (n, next((i for i in range(len(got)) if got[i:i+1] != want[i:i+1]), len(got))))
    s.close()

SPLIT = (cmd("SET", "split:k", "hello world") + b"PING\r\n" + cmd("GET", "split:k") +
         b"ECHO \"a b\"\r\n" + cmd("DEL", "split:k") + b"*0\r\n" + cmd("PING"))
SPLIT_WANT = b"+OK\r\n+PONG\r\n$11\r\nhello world\r\n$3\r\na b\r\n:1\r\n+PONG\r\n"

def t_split(port):
    """The same stream cut at every byte boundary, then sent a byte at a time."""
    for k in range(1, len(SPLIT)):
        s = conn(port)
        s.sendall(SPLIT[:k])
        time.sleep(0.002)
        s.sendall(SPLIT[k:])
        got = recv_n(s, len(SPLIT_WANT))
        check(got == SPLIT_WANT, "split at byte %d: %r" % (k, got))
        s.close()
    s = conn(port)
    for i in range(len(SPLIT)):
        s.sendall(SPLIT[i:i + 1])
        time.sleep(0.0005)
    got = recv_n(s, len(SPLIT_WANT))
    check(got == SPLIT_WANT, "a byte at a time: %r" % got)
    s.close()

def expect_close(port, data, want, what):
    s = conn(port)
    s.sendall(data)
    got, closed = recv_all(s)
    check(got == want, "%s: got %r, want %r" % (what, got, want))
    check(closed, "%s: the connection stayed open" % what)
    s.close()

def t_bounds(port, pid):
    """Hostile or malformed requests: redis's errors, then the server hangs up."""
    expect_close(port, b"*1\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length\r\n", "$-5")
    expect_close(port, b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n", "*abc")
    expect_close(port, b"*1\r\nfoo\r\n", b"-ERR Protocol error: expected '$', got 'f'\r\n",
                 "no $")
    expect_close(port, b"PING\r\n*2\r\n$3\r\nGET\r\n$99999999999\r\n",
                 b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n", "bulk past max")
    expect_close(port, b"a" * 70000 + b"\r\n",
                 b"-ERR Protocol error: too big inline request\r\n", "70000-byte line")
    before = rss(pid)
    hostile = [conn(port) for _ in range(20)]
    for s in hostile:
        s.sendall(b"*999999999\r\n$536870000\r\nxx")
    time.sleep(0.3)
    s = conn(port)
    s.sendall(b"PING\r\n")
    check(recv_n(s, 7) == b"+PONG\r\n", "PING beside hostile clients")
    grew = rss(pid) - before
    check(grew < 16 << 20, "20 hostile *999999999 clients grew the server by %d bytes" % grew)
    for h in hostile:
        h.close()
    big = bytes(range(256)) * (5 * 4096)
    s.sendall(cmd("SET", "bigval", big) + cmd("GET", "bigval") + cmd("DEL", "bigval"))
    want = b"+OK\r\n$%d\r\n%s\r\n:1\r\n" % (len(big), big)
    check(recv_n(s, len(want)) == want, "a 5 MiB value, binary, round trip")
    s.close()

def t_maxbulk(port):
    s = conn(port)
    s.sendall(cmd("SET", "mb", b"x" * 1000) + cmd("STRLEN", "mb") + cmd("DEL", "mb"))
    check(recv_n(s, 16) == b"+OK\r\n:1000\r\n:1\r\n", "a bulk of exactly --max-bulk")
    s.close()
    expect_close(port, cmd("SET", "mb", b"x" * 1001), b"-ERR Protocol error: invalid bulk length\r\n",
                 "a bulk past --max-bulk")

def t_maxclients(port):
    keep = [conn(port), conn(port)]
    for s in keep:
        s.sendall(b"PING\r\n")
        check(recv_n(s, 7) == b"+PONG\r\n", "PING within --maxclients")
    expect_close(port, b"PING\r\n", b"-ERR max number of clients reached\r\n", "past --maxclients")
    keep[0].close()
    time.sleep(0.2)
    s = conn(port)
    s.sendall(b"PING\r\n")
    check(recv_n(s, 7) == b"+PONG\r\n", "a client once another has gone")

def t_maxmemory(port):
    s = conn(port)
    oom = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
    for i in range(2000):
        s.sendall(cmd("SET", "mm:%d" % i, b"v" * 10000))
        r = s.recv(100)
        if r != b"+OK\r\n":
            break
    check(r == oom, "--maxmemory: got %r" % r)
    s.sendall(cmd("STRLEN", "mm:0") + cmd("LPUSH", "x", "y") + cmd("DEL", "mm:0"))
    want = b":10000\r\n" + oom + b":1\r\n"
    check(recv_n(s, len(want)) == want, "reads, writes and DEL past --maxmemory")
    s.close()

def t_slowreader(port, pid):
    """A client that pipelines and never reads holds the server's memory bounded."""
    s = conn(port)
    s.sendall(cmd("SET", "slow", b"z" * (1 << 20)))
    check(recv_n(s, 5) == b"+OK\r\n", "SET 1 MiB")
    before = rss(pid)
    s.setblocking(False)
    burst = cmd("GET", "slow") * 1000
    try:
        s.send(burst)
    except BlockingIOError:
        pass
    time.sleep(1.0)
    grew = rss(pid) - before
    check(grew < 64 << 20, "a slow reader grew the server by %d bytes" % grew)
    o = conn(port)
    o.sendall(b"PING\r\n")
    check(recv_n(o, 7) == b"+PONG\r\n", "PING beside a slow reader")
    o.sendall(cmd("DEL", "slow"))
    s.close()
    o.close()

def t_expiry(port):
    s = conn(port)
    s.sendall(cmd("FLUSHALL"))
    check(recv_n(s, 5) == b"+OK\r\n", "FLUSHALL")
    s.sendall(b"".join(cmd("SET", "ex:%d" % i, "v", "PX", "50") for i in range(200)) +
              cmd("SET", "ex:lazy", "v", "PX", "100") + cmd("GET", "ex:lazy"))
    check(recv_n(s, 5 * 201 + 7) == b"+OK\r\n" * 201 + b"$1\r\nv\r\n", "SET PX")
    time.sleep(0.6)
    s.sendall(cmd("DBSIZE"))
    check(recv_n(s, 4) == b":0\r\n", "keys with a TTL removed by the active sweep")
    s.close()

t = sys.argv[1]
port = int(sys.argv[2])
args = [int(a) for a in sys.argv[3:]]
globals()["t_" + t](port, *args)
PY
kvt() { python3 "$tmp/kvt.py" "$@" || fail "$1 (port $2)"; ok; }

# The command script: kv_server's replies must be redis-server's, line for line.
cat >"$tmp/cmds.txt" <<'EOF'
FLUSHALL
PING
PING hello
PING a b
ECHO "hi there"
ECHO
SELECT 0
SELECT x
DBSIZE
CONFIG GET save
CONFIG GET appendonly
CONFIG GET nosuchthing
CONFIG GET
CONFIG FOO
SET k1 v1
GET k1
GET nokey
GET
SET k1 v2 NX
SET k1 v3 XX
GET k1
SET k2 v NX
SET k3 v XX
SET k1 v EX 0
SET k1 v EX -1
SET k1 v EX abc
SET k1 v PX 100000 EX 10
SET k1 v NX XX
SET k1 v BADOPT
SET k1 vv GET
SET k4 vv GET
SET k5 v EX 100
TTL k5
PTTL nokey
TTL k1
EXPIRE k1 100
TTL k1
EXPIRE nokey 10
PEXPIRE k1 200000
TTL k1
PERSIST k1
TTL k1
EXPIRE k1 abc
EXPIRE k1 -1
EXISTS k1
DEL k2 k3 k4 nokey
EXISTS k2 k3 k4 k5 k5
INCR cnt
INCR cnt
INCRBY cnt 10
INCRBY cnt x
DECR cnt
DECRBY cnt 5
INCR k5
SET big 9223372036854775807
INCR big
SET sp " 1"
INCR sp
MSET a 1 b 2 c 3
MSET a 1 b
MGET a b c nokey
APPEND a xyz
APPEND newapp hello
STRLEN a
STRLEN nokey
GET a
TYPE a
TYPE nokey
LPUSH l a b c
RPUSH l d e
TYPE l
LLEN l
LRANGE l 0 -1
LRANGE l 1 2
LRANGE l -2 -1
LRANGE l 5 10
LRANGE l x 1
LPOP l
RPOP l
LPOP l 2
RPOP l 0
LPOP nokey
LPOP nokey 2
LPOP l -1
LLEN l
GET l
LPUSH k5 x
INCR l
RPOP l
RPOP l
EXISTS l
SADD s a b c a
SADD s d
SCARD s
SISMEMBER s a
SISMEMBER s z
SREM s a z
SCARD s
SMEMBERS nokey
SREM nokey a
SPOP nokey
SPOP nokey 2
SADD k5 x
HSET h f1 v1 f2 v2
HSET h f1 v9
HSET h f1
HGET h f1
HGET h nof
HGET nokey f
HDEL h f1 nof
HGETALL h
HGETALL nokey
HLEN h
HDEL h f2
EXISTS h
HSET k5 f v
ZADD z 1 a 2 b 3 c
ZADD z 0.5 a
ZADD z NX 9 a 4 d
ZADD z XX 9 a 5 e
ZADD z CH 1 a 1 b
ZADD z x a
ZADD z 1
ZADD z NX XX 1 a
ZCARD z
ZRANGE z 0 -1
ZRANGE z 0 -1 WITHSCORES
ZRANGE z 1 1 withscores
ZRANGE z 10 20
ZRANGE nokey 0 -1
ZSCORE z d
ZSCORE z nom
ZPOPMIN z
ZPOPMIN z 2
ZPOPMIN nokey
ZCARD z
ZADD k5 1 a
NOSUCHCMD a b
nosuch
DBSIZE
DEL a b c cnt k1 k5 sp big newapp z
DBSIZE
FLUSHALL
DBSIZE
EOF

redis_port=
if command -v redis-server >/dev/null; then
	redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
		--daemonize no >"$tmp/redis.log" 2>&1 &
	pids+=("$!")
	for _ in $(seq 100); do
		redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
		sleep 0.05
	done
	redis-cli -p "$redis_port" ping >/dev/null 2>&1 || fail "redis-server did not start"
	redis-cli -p "$redis_port" <"$tmp/cmds.txt" >"$tmp/redis.out" 2>&1
else
	echo "note: redis-server missing: replies checked without a reference (apt-get install redis-server)"
fi

# bench_dbsize PORT: redis-benchmark's default run, then DBSIZE.
bench_dbsize() {
	redis-cli -p "$1" flushall >/dev/null
	redis-benchmark -p "$1" -n 2000 -q >"$tmp/bench.$1" 2>&1 || fail "redis-benchmark on port $1: $(tail -3 "$tmp/bench.$1")"
	redis-cli -p "$1" dbsize
}
[ -n "$redis_port" ] && redis_dbsize=$(bench_dbsize "$redis_port")

# One pass of every check on a server started with ARGS (--loops N).
check_all() {
	local name=$1
	shift
	start_kv "$name" "$@"
	local p=$port kpid=$pid
	redis-cli -p "$p" <"$tmp/cmds.txt" >"$tmp/$name.out" 2>&1
	if [ -n "$redis_port" ]; then
		diff -u "$tmp/redis.out" "$tmp/$name.out" >"$tmp/$name.diff" ||
			fail "$name: replies differ from redis-server's:
$(head -40 "$tmp/$name.diff")"
	else
		grep -q "WRONGTYPE Operation against a key holding the wrong kind of value" "$tmp/$name.out" ||
			fail "$name: no WRONGTYPE in the replies"
	fi
	ok
	kvt pipeline "$p"
	kvt split "$p"
	kvt bounds "$p" "$kpid"
	kvt slowreader "$p" "$kpid"
	kvt expiry "$p"
	local d
	d=$(bench_dbsize "$p")
	grep -q "MSET" "$tmp/bench.$p" || fail "$name: redis-benchmark ran no MSET: $(cat "$tmp/bench.$p")"
	[ "$d" = "${redis_dbsize:-4}" ] || fail "$name: DBSIZE after redis-benchmark is $d, redis-server's ${redis_dbsize:-4}"
	ok
	stop_kv "$kpid" "$p" "$name"
}

check_all loops1
check_all loops2 --loops 2

start_kv bulk --max-bulk 1000
kvt maxbulk "$port"
stop_kv "$pid" "$port" bulk
start_kv clients --maxclients 2
kvt maxclients "$port"
stop_kv "$pid" "$port" clients
start_kv memory --maxmemory 2mb --loops 2
kvt maxmemory "$port"
stop_kv "$pid" "$port" memory

echo "kv_server: $passed passed, 0 failed"
