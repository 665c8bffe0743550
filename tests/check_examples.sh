#!/usr/bin/env bash
# The examples as a person runs them: weft_cp copies and refuses bad input;
# echo_server and http_server answer over loopback and shut down cleanly on
# SIGINT / SIGTERM while a connection is still open.
# usage: check_examples.sh BUILD_DIR/examples
set -u
ex=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; kill $(jobs -p) 2>/dev/null' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

head -c 3000000 /dev/urandom >"$tmp/src"
if ! "$ex/weft_cp" "$tmp/src" "$tmp/dst" 2>"$tmp/cp.err"; then
	# Where io_uring is refused (a container's seccomp profile, the sysctl,
	# no kernel support) no example can run: skip, and say why.
	if grep -q "io_uring" "$tmp/cp.err"; then
		echo "SKIP: the examples need a weft loop, and none can be made here: $(cat "$tmp/cp.err")"
		exit 77
	fi
	fail "weft_cp failed: $(cat "$tmp/cp.err")"
fi
cmp -s "$tmp/src" "$tmp/dst" || fail "weft_cp copy differs"
"$ex/weft_cp" "$tmp/missing" "$tmp/x" 2>"$tmp/err" && fail "weft_cp of a missing file succeeded"
grep -q "No such file" "$tmp/err" || fail "weft_cp error message: $(cat "$tmp/err")"
[ -e "$tmp/x" ] && fail "weft_cp left a file behind"

port_of() { # wait for "listening on port N" in $1
	for _ in $(seq 50); do
		p=$(grep -o 'listening on port [0-9]*' "$1" 2>/dev/null | grep -o '[0-9]*$')
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.1
	done
	return 1
}

# echo_server: a line comes back; SIGINT with the connection open ends it with 0.
"$ex/echo_server" 0 127.0.0.1 2>"$tmp/echo.err" &
pid=$!
port=$(port_of "$tmp/echo.err") || fail "echo_server did not start: $(cat "$tmp/echo.err")"
exec 3<>"/dev/tcp/127.0.0.1/$port"
echo "weft says hi" >&3
read -r -t 5 line <&3 || fail "echo_server did not answer"
[ "$line" = "weft says hi" ] || fail "echo_server echoed '$line'"
kill -INT $pid
for _ in $(seq 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -0 $pid 2>/dev/null && fail "echo_server still running 5 s after SIGINT"
wait $pid || fail "echo_server exited with $?"
exec 3>&-

# http_server: two keep-alive requests on one connection, then a 404.
"$ex/http_server" 0 127.0.0.1 2>"$tmp/http.err" &
pid=$!
port=$(port_of "$tmp/http.err") || fail "http_server did not start: $(cat "$tmp/http.err")"

# A second server on the same port fails with the server's own error, said
# plainly, never as an io_uring set-up problem.
"$ex/http_server" "$port" 127.0.0.1 2>"$tmp/busy.err" && fail "a second http_server on port $port started"
grep -q "Address already in use" "$tmp/busy.err" || fail "busy port: $(cat "$tmp/busy.err")"
grep -q "io_uring" "$tmp/busy.err" && fail "busy port blamed io_uring: $(cat "$tmp/busy.err")"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
timeout 5 cat <&3 >"$tmp/resp" || fail "http_server did not close after Connection: close"
[ "$(grep -c '^HTTP/1.1 200 OK' "$tmp/resp")" = 2 ] || fail "expected two 200s: $(cat "$tmp/resp")"
grep -q '^HTTP/1.1 404' "$tmp/resp" || fail "expected a 404"
[ "$(grep -c '^hello, world' "$tmp/resp")" = 2 ] || fail "expected two bodies"
exec 3>&-
# A request too large gets its 431, every time, by a client that sends all
# of it before reading: the server shuts its side down and drains what
# still comes before it closes (a close with unread bytes resets the
# connection, and the client's next send then fails before it reads).
got431=$(python3 - "$port" <<'PY'
import socket, sys, time
port, ok = int(sys.argv[1]), 0
for _ in range(20):
    s = socket.create_connection(("127.0.0.1", port))
    data = b""
    try:
        # A client that sends its whole (too large) request before it reads.
        s.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 9000)
        for _ in range(8):
            time.sleep(0.005)
            s.sendall(b"a" * 4096)
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
    except (ConnectionResetError, BrokenPipeError):
        pass
    ok += data.startswith(b"HTTP/1.1 431")
    s.close()
print(ok)
PY
) || fail "the 431 check could not run"
[ "$got431" = 20 ] || fail "http_server's 431 arrived $got431 times of 20"
kill -TERM $pid
wait $pid || fail "http_server exited with $?"

# --loops: a pool of loops, a listener each on one port; every loop answers,
# and one signal shuts every loop down, connections open or not.
"$ex/echo_server" --loops 2 0 127.0.0.1 2>"$tmp/echo2.err" &
pid=$!
port=$(port_of "$tmp/echo2.err") || fail "echo_server --loops 2 did not start: $(cat "$tmp/echo2.err")"
grep -q "2 loops" "$tmp/echo2.err" || fail "echo_server --loops 2: $(cat "$tmp/echo2.err")"
for i in 3 4 5 6 7 8; do
	eval "exec $i<>/dev/tcp/127.0.0.1/$port"
	echo "hi $i" >&$i
	read -r -t 5 line <&$i || fail "echo_server --loops 2 did not answer connection $i"
	[ "$line" = "hi $i" ] || fail "echo_server --loops 2 echoed '$line'"
done
kill -INT $pid
for _ in $(seq 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -0 $pid 2>/dev/null && fail "echo_server --loops 2 still running 5 s after SIGINT"
wait $pid || fail "echo_server --loops 2 exited with $?"
grep -q "served 6 connections" "$tmp/echo2.err" || fail "echo_server --loops 2: $(cat "$tmp/echo2.err")"
for i in 3 4 5 6 7 8; do eval "exec $i>&-"; done

"$ex/http_server" --loops 0 --pin 0 127.0.0.1 2>"$tmp/http0.err" &
pid=$!
port=$(port_of "$tmp/http0.err") || fail "http_server --loops 0 did not start: $(cat "$tmp/http0.err")"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
timeout 5 cat <&3 >"$tmp/resp0" || fail "http_server --loops 0 did not answer"
grep -q '^hello, world' "$tmp/resp0" || fail "http_server --loops 0: $(cat "$tmp/resp0")"
exec 3>&-
kill -TERM $pid
wait $pid || fail "http_server --loops 0 exited with $?"

"$ex/http_server" --loops many 2>"$tmp/bad.err" && fail "http_server --loops many started"
grep -q "takes a number of loops" "$tmp/bad.err" || fail "--loops many: $(cat "$tmp/bad.err")"
# http_server --tls CERT KEY: an HTTPS request through openssl s_client, with a
# certificate made here (no key is committed). Skipped, saying why, where the
# build has no TLS or the openssl command is missing.
check_https() {
	if "$ex/http_server" --tls "$tmp/none.pem" "$tmp/none.pem" 2>"$tmp/tls.err" ||
		grep -q "this build has no TLS" "$tmp/tls.err"; then
		echo "SKIP (tls): http_server was built without libweft-tls"
		return 0
	fi
	if ! command -v openssl >/dev/null 2>&1; then
		echo "SKIP (tls): the openssl command is not installed"
		return 0
	fi
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-subj /CN=localhost -addext subjectAltName=DNS:localhost \
		-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>"$tmp/req.err" ||
		fail "openssl req: $(cat "$tmp/req.err")"
	"$ex/http_server" --tls "$tmp/cert.pem" "$tmp/key.pem" 0 127.0.0.1 2>"$tmp/https.err" &
	local hpid=$!
	local hport
	hport=$(port_of "$tmp/https.err") || fail "http_server --tls did not start: $(cat "$tmp/https.err")"
	printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
		timeout 10 openssl s_client -connect "127.0.0.1:$hport" -servername localhost \
			-verify_hostname localhost -CAfile "$tmp/cert.pem" -verify_return_error -quiet \
			>"$tmp/https.resp" 2>"$tmp/s_client.err" ||
		fail "s_client to http_server --tls: $(cat "$tmp/s_client.err")"
	[ "$(grep -c '^hello, world' "$tmp/https.resp")" = 2 ] ||
		fail "http_server --tls answered: $(cat "$tmp/https.resp")"
	kill -INT $hpid
	wait $hpid || fail "http_server --tls exited with $?"
	echo "https ok"
}
check_https

echo "examples ok"
