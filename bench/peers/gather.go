// SPDX-License-Identifier: MIT
//
// gather.go: bench/gather's workloads (see ../workload.h) as Go programmers
// write them: a goroutine per task, a sync.WaitGroup to gather, blocking
// calls that the Go runtime turns into netpoller waits (sockets, timers) or
// blocking system calls on extra OS threads (files). Go's standard library
// only, so it builds offline with Debian's golang-go.
//
//	peer_go WORKLOAD go N [--ms D] [--file PATH] [--direct] [--dir DIR]
//	        [--port P] [--rounds K] [--log FILE]
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

const (
	slice = 64 * 1024
	wsize = 4096
	msg   = 64
)

var (
	workload, mode     string
	n, dms, rounds     int64 = 0, 100, 10
	file, dir, logPath string
	direct             bool
	port               int
	fd                 *os.File
	slices             int64
	wbuf               = make([]byte, wsize)
)

func usage(why string) {
	fmt.Fprintf(os.Stderr, "peer_go: %s\nusage: peer_go WORKLOAD go N [--ms D] [--file PATH] [--direct] [--dir DIR] [--port P] [--rounds K] [--log FILE]\n", why)
	os.Exit(2)
}

func count(s, what string) int64 {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		usage(fmt.Sprintf("%s: expected a whole number >= 0, got '%s'", what, s))
	}
	return v
}

func parse() {
	var pos []string
	a := os.Args[1:]
	for i := 0; i < len(a); i++ {
		if a[i] == "--direct" {
			direct = true
			continue
		}
		if len(a[i]) == 0 || a[i][0] != '-' {
			pos = append(pos, a[i])
			continue
		}
		if i+1 >= len(a) {
			usage(a[i] + " needs a value")
		}
		v := a[i+1]
		i++
		switch a[i-1] {
		case "--ms":
			dms = count(v, "--ms")
		case "--file":
			file = v
		case "--dir":
			dir = v
		case "--port":
			port = int(count(v, "--port"))
		case "--rounds":
			rounds = count(v, "--rounds")
		case "--log":
			logPath = v
		default:
			usage("unknown option '" + a[i-1] + "'")
		}
	}
	if len(pos) != 3 {
		usage("expected WORKLOAD MODE N")
	}
	workload, mode, n = pos[0], pos[1], count(pos[2], "N")
	if mode != "go" {
		usage("unknown mode '" + mode + "'")
	}
	switch workload {
	case "sleep", "write", "socket":
	case "read", "mixed":
		if file == "" {
			usage("workload '" + workload + "' needs --file")
		}
	default:
		usage("unknown workload '" + workload + "'")
	}
	if workload == "write" && dir == "" {
		usage("workload 'write' needs --dir")
	}
	if (workload == "socket" || workload == "mixed") && port == 0 {
		usage("workload '" + workload + "' needs --port")
	}
	if rounds < 1 {
		usage("--rounds: at least 1")
	}
}

func opsPerTask() int64 {
	switch workload {
	case "write":
		return 5
	case "socket":
		return 2*rounds + 2
	case "mixed":
		return 6
	}
	return 1
}

var names = map[syscall.Errno]string{
	syscall.EAGAIN: "EAGAIN", syscall.ENOMEM: "ENOMEM", syscall.EMFILE: "EMFILE",
	syscall.ENFILE: "ENFILE", syscall.ECONNREFUSED: "ECONNREFUSED",
	syscall.ECONNRESET: "ECONNRESET", syscall.EADDRNOTAVAIL: "EADDRNOTAVAIL",
	syscall.ETIMEDOUT: "ETIMEDOUT", syscall.EINVAL: "EINVAL", syscall.EIO: "EIO",
	syscall.ENOENT: "ENOENT", syscall.EPIPE: "EPIPE", syscall.ENOSPC: "ENOSPC",
}

// errName gives the errno name of err, as the C programs print it.
func errName(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		if s, ok := names[e]; ok {
			return s
		}
		return fmt.Sprintf("E%d", int(e))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "ECONNRESET"
	}
	return "EIO"
}

// aligned returns a 64 KiB buffer that starts on a 4 KiB boundary (O_DIRECT).
func aligned() []byte {
	b := make([]byte, slice+4096)
	off := int((4096 - uintptr(unsafe.Pointer(&b[0]))%4096) % 4096)
	return b[off : off+slice]
}

func readSlice(i int64) error {
	var b []byte
	if direct {
		b = aligned()
	} else {
		b = make([]byte, slice)
	}
	_, err := fd.ReadAt(b, (i%slices)*slice)
	return err
}

func writeOwnFile(i int64) error {
	path := fmt.Sprintf("%s/t%d", dir, i)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0644)
	if err != nil {
		return err
	}
	_, err = f.Write(wbuf)
	if err == nil {
		err = f.Sync()
	}
	if e := f.Close(); err == nil {
		err = e
	}
	if e := os.Remove(path); err == nil {
		err = e
	}
	return err
}

func roundTrips(k int64) error {
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	defer c.Close()
	m := make([]byte, msg)
	for r := int64(0); r < k; r++ {
		if _, err := c.Write(m); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, m); err != nil {
			return err
		}
	}
	return nil
}

func task(i int64) error {
	switch workload {
	case "sleep":
		time.Sleep(time.Duration(dms) * time.Millisecond)
		return nil
	case "read":
		return readSlice(i)
	case "write":
		return writeOwnFile(i)
	case "socket":
		return roundTrips(rounds)
	}
	time.Sleep(time.Duration(dms) * time.Millisecond)
	if err := readSlice(i); err != nil {
		return err
	}
	return roundTrips(1)
}

func result(status string, done int64, wall float64) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	line := fmt.Sprintf("bench=gather workload=%s mode=go n=%d ops=%d status=%s done=%d wall_s=%.4f",
		workload, n, n*opsPerTask(), status, done, wall)
	if workload == "sleep" || workload == "mixed" {
		line += fmt.Sprintf(" d_ms=%d", dms)
	}
	line += fmt.Sprintf(" user_s=%.3f sys_s=%.3f maxrss_kb=%d nvcsw=%d nivcsw=%d minflt=%d",
		float64(ru.Utime.Sec)+float64(ru.Utime.Usec)/1e6,
		float64(ru.Stime.Sec)+float64(ru.Stime.Usec)/1e6,
		ru.Maxrss, ru.Nvcsw, ru.Nivcsw, ru.Minflt)
	fmt.Println(line)
	if logPath != "" {
		if f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0644); err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
}

func main() {
	parse()
	for i := range wbuf {
		wbuf[i] = 'w'
	}
	if workload == "read" || workload == "mixed" {
		flags := os.O_RDONLY
		if direct {
			flags |= syscall.O_DIRECT
		}
		var err error
		fd, err = os.OpenFile(file, flags, 0)
		if err != nil {
			fmt.Fprintf(os.Stderr, "peer_go: %v\n", err)
			result(errName(err), 0, 0)
			os.Exit(3)
		}
		st, _ := fd.Stat()
		slices = st.Size() / slice
		if slices == 0 {
			fmt.Fprintf(os.Stderr, "peer_go: %s is smaller than one 64 KiB slice\n", file)
			os.Exit(2)
		}
	}
	t0 := time.Now()
	errs := make([]error, n)
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func(i int64) {
			defer wg.Done()
			errs[i] = task(i)
		}(i)
	}
	wg.Wait()
	wall := time.Since(t0).Seconds()
	status, done := "ok", int64(0)
	for _, e := range errs {
		if e == nil {
			done++
		} else if status == "ok" {
			status = errName(e)
		}
	}
	result(status, done, wall)
	if status != "ok" {
		os.Exit(3)
	}
}
