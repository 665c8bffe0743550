// SPDX-License-Identifier: MIT
//
// idle.go: bench_idle's server as Go programmers write it: a goroutine per
// connection, parked in conn.Read into a 4 KiB buffer of its own. The
// client is a child process (this program run with "client"), as in
// bench_idle, so that the figure is the server's alone. Standard library
// only.
//
//	peer_idle_go N
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	res, _ := strconv.ParseInt(f[1], 10, 64)
	return res * int64(os.Getpagesize()) / 1024
}

func client(addr string, n int) {
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "peer_idle_go: dial:", err)
			os.Exit(1)
		}
		conns[i] = c
	}
	os.Stdout.Write([]byte("r"))
	one := make([]byte, 1)
	os.Stdin.Read(one)
	ok := 0
	for _, c := range conns {
		c.Write([]byte("x"))
	}
	for _, c := range conns {
		if k, _ := c.Read(one); k == 1 && one[0] == 'y' {
			ok++
		}
		c.Close()
	}
	fmt.Print(ok)
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == "client" {
		n, _ := strconv.Atoi(os.Args[3])
		client(os.Args[2], n)
		return
	}
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: peer_idle_go CONNS")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n <= 0 {
		fmt.Fprintln(os.Stderr, "peer_idle_go: CONNS must be a positive number")
		os.Exit(2)
	}
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	rl.Cur = rl.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer_idle_go: listen:", err)
		os.Exit(1)
	}
	runtime.GC()
	before := rssKB()
	cmd := exec.Command(os.Args[0], "client", ln.Addr().String(), strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "peer_idle_go: client:", err)
		os.Exit(1)
	}
	for i := 0; i < n; i++ {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "peer_idle_go: accept:", err)
			os.Exit(1)
		}
		go func(c net.Conn) {
			buf := make([]byte, 4096)
			if k, _ := c.Read(buf); k > 0 {
				c.Write([]byte("y"))
			}
			c.Close()
		}(c)
	}
	ready := make([]byte, 1)
	stdout.Read(ready)
	time.Sleep(200 * time.Millisecond)
	idle := rssKB()
	stdin.Write([]byte("p"))
	out := make([]byte, 32)
	k, _ := stdout.Read(out)
	cmd.Wait()
	got, _ := strconv.Atoi(strings.TrimSpace(string(out[:k])))
	if got != n {
		fmt.Fprintf(os.Stderr, "peer_idle_go: %d of %d connections answered\n", got, n)
		os.Exit(1)
	}
	fmt.Printf("mode=go conns=%d rss_before_kb=%d rss_idle_kb=%d bytes_per_conn=%.0f\n", n, before,
		idle, float64(idle-before)*1024/float64(n))
}
