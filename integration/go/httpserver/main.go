// Command httpserver is the overhead benchmark's server: a net/http service
// whose handler does a little of what real handlers do (parse the request,
// allocate, encode JSON), so a request costs tens of microseconds and passes
// through the scheduler and the netpoller like any Go server's requests.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
)

type item struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Score int    `json:"score"`
}

func handle(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n <= 0 || n > 1000 {
		n = 16
	}
	items := make([]item, n)
	for i := range items {
		items[i] = item{ID: i, Name: "item-" + strconv.Itoa(i), Score: (i * 7919) % 101}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(items)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("{\"event\":\"ready\",\"pid\":%d,\"addr\":%q,\"go_version\":%q}\n", os.Getpid(), ln.Addr().String(), runtime.Version())
	http.Serve(ln, http.HandlerFunc(handle))
}
