// SPDX-License-Identifier: MIT
//
// peer_go_http: Go's net/http answering GET / with "hello, world\n", as
// examples/http_server does. bench/http runs it with GOMAXPROCS set to the
// server's CPUs.
//
//	peer_go_http PORT
package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: peer_go_http PORT")
		os.Exit(2)
	}
	body := []byte("hello, world\n")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	if err := http.ListenAndServe("127.0.0.1:"+os.Args[1], nil); err != nil {
		fmt.Fprintln(os.Stderr, "peer_go_http:", err)
		os.Exit(1)
	}
}
