// SPDX-License-Identifier: MIT
//
// churn.go: bench_churn's Go server, as Go programmers write one: a
// net.Listener and an accept loop that closes every connection. Run by
// bench_churn with GOMAXPROCS=1, pinned to the server's CPU. The protocol
// is bench_churn's: fd 3 is the listener (made by bench_churn, so that
// every server has the same socket and backlog; net.FileListener is what
// net.Listen returns for it), fd 4 the control pipe ('m' starts the
// measured window, 'e' ends it, end of file stops the server); one line of
// key=value on stdout at the end. Standard library only.
//
//	peer_churn_go
package main

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

func cpuNs() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return (ru.Utime.Sec+ru.Stime.Sec)*1e9 + (ru.Utime.Usec+ru.Stime.Usec)*1e3
}

func main() {
	if len(os.Args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: peer_churn_go (fd 3: the listener, fd 4: the control pipe)")
		os.Exit(2)
	}
	lf, ctl := os.NewFile(3, "listener"), os.NewFile(4, "control")
	ln, err := net.FileListener(lf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer_churn_go: fd 3:", err)
		os.Exit(2)
	}
	lf.Close() // FileListener holds its own dup

	var accepted, errors int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					atomic.AddInt64(&errors, 1)
					continue
				}
				return // the listener was closed: the end
			}
			atomic.AddInt64(&accepted, 1)
			if c.Close() != nil {
				atomic.AddInt64(&errors, 1)
			}
		}
	}()

	var markAcc, endAcc, markCPU, endCPU int64
	var markT, endT time.Time
	marks := 0
	b := make([]byte, 1)
	for {
		n, err := ctl.Read(b)
		if n == 1 && b[0] == 'm' && marks == 0 {
			markAcc, markCPU, markT, marks = atomic.LoadInt64(&accepted), cpuNs(), time.Now(), 1
		} else if n == 1 && b[0] == 'e' && marks == 1 {
			endAcc, endCPU, endT, marks = atomic.LoadInt64(&accepted), cpuNs(), time.Now(), 2
		}
		if err != nil {
			break
		}
	}
	ln.Close()
	<-done
	if marks != 2 {
		fmt.Fprintln(os.Stderr, "peer_churn_go: the client never ended the window")
		os.Exit(1)
	}
	fmt.Printf("accepted=%d accepted_total=%d errors=%d secs=%.4f cpu_ns=%d\n",
		endAcc-markAcc, atomic.LoadInt64(&accepted), atomic.LoadInt64(&errors),
		endT.Sub(markT).Seconds(), endCPU-markCPU)
}
