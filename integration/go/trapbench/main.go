// Command trapbench calls one small Go function in a tight loop and reports
// how long the calls took, once per line read on stdin. gort's linkage bench
// puts a uprobe on one instruction of that function between runs (one the
// kernel emulates, one it single-steps, its RET) and takes the added time
// per call as the cost of one trap of that kind.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"os"
	"time"
)

//go:noinline
func leaf(x uint64) uint64 { return x*2654435761 + 1 }

// probed has the frame of any small Go function: a stack-bound check
// (CMPQ, then a Jcc the kernel emulates), a PUSHQ BP, a direct CALL and a
// RET, so every site kind gort chooses between is in it.
//
//go:noinline
func probed(x uint64) uint64 { return leaf(x) ^ x }

type report struct {
	Event     string `json:"event"`
	Pid       int    `json:"pid"`
	Calls     int    `json:"calls,omitempty"`
	ElapsedNs int64  `json:"elapsed_ns,omitempty"`
	Sink      uint64 `json:"sink,omitempty"`
}

func main() {
	calls := flag.Int("calls", 200000, "calls per run")
	flag.Parse()
	out := json.NewEncoder(os.Stdout)
	_ = out.Encode(report{Event: "ready", Pid: os.Getpid()})
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() != "go" {
			return
		}
		var acc uint64
		start := time.Now()
		for i := 0; i < *calls; i++ {
			acc += probed(uint64(i))
		}
		// The sum keeps the loop from being optimised away.
		elapsed := time.Since(start).Nanoseconds()
		_ = out.Encode(report{Event: "done", Pid: os.Getpid(), Calls: *calls, ElapsedNs: elapsed, Sink: acc})
	}
}
