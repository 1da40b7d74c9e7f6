// Command pingpong is gort's known workload: PAIRS pairs of goroutines bounce
// a token over unbuffered channels ROUNDS times each, so every round trip
// parks and readies both goroutines. It reports the goroutine ids it created
// so a test can check that gort saw exactly those.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

type report struct {
	Event      string   `json:"event"`
	Pid        int      `json:"pid"`
	GoVersion  string   `json:"go_version,omitempty"`
	Pairs      int      `json:"pairs,omitempty"`
	Rounds     int      `json:"rounds,omitempty"`
	RoundTrips int64    `json:"round_trips,omitempty"`
	Goids      []uint64 `json:"goids,omitempty"`
	ElapsedNs  int64    `json:"elapsed_ns,omitempty"`
}

func emit(r report) {
	r.Pid = os.Getpid()
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
}

// goid parses the current goroutine's id from its stack header
// ("goroutine 18 [running]:"); the runtime exposes no API for it.
func goid() uint64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	f := bytes.Fields(buf[:n])
	if len(f) < 2 {
		return 0
	}
	id, _ := strconv.ParseUint(string(f[1]), 10, 64)
	return id
}

func run(pairs, rounds int) ([]uint64, time.Duration) {
	ids := make([]uint64, 2*pairs)
	var wg sync.WaitGroup
	start := time.Now()
	for p := 0; p < pairs; p++ {
		ping, pong := make(chan int), make(chan int)
		wg.Add(2)
		go func(slot int) {
			defer wg.Done()
			ids[slot] = goid()
			for i := 0; i < rounds; i++ {
				ping <- i
				<-pong
			}
			close(ping)
		}(2 * p)
		go func(slot int) {
			defer wg.Done()
			ids[slot] = goid()
			for v := range ping {
				pong <- v
			}
		}(2*p + 1)
	}
	wg.Wait()
	return ids, time.Since(start)
}

func main() {
	pairs := flag.Int("pairs", 4, "goroutine pairs")
	rounds := flag.Int("rounds", 10000, "round trips per pair")
	waitStart := flag.Bool("wait-start", false, "print a ready line, then wait for a line on stdin before working")
	loop := flag.Duration("loop", 0, "repeat the workload, pausing this long between runs, until stdin closes or forever (demo mode)")
	flag.Parse()

	emit(report{Event: "ready", GoVersion: runtime.Version(), Pairs: *pairs, Rounds: *rounds})
	if *waitStart {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	for {
		ids, elapsed := run(*pairs, *rounds)
		emit(report{Event: "done", Pairs: *pairs, Rounds: *rounds, RoundTrips: int64(*pairs) * int64(*rounds), Goids: ids, ElapsedNs: elapsed.Nanoseconds()})
		if *loop == 0 {
			return
		}
		time.Sleep(*loop)
	}
}
