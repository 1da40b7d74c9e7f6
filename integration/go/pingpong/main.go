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
	"sort"
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
	P50Ns      int64    `json:"p50_ns,omitempty"`
	P99Ns      int64    `json:"p99_ns,omitempty"`
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

// run bounces the token rounds times per pair, or, when forDur is set, until
// that much time has passed (rounds is then ignored). It returns the ids of
// the goroutines it created, the elapsed time, the round trips made, and every
// 16th round-trip latency of the first pair (for quantiles).
func run(pairs, rounds int, forDur time.Duration) ([]uint64, time.Duration, int64, []time.Duration) {
	ids := make([]uint64, 2*pairs)
	trips := make([]int64, pairs)
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(forDur)
	for p := 0; p < pairs; p++ {
		ping, pong := make(chan int), make(chan int)
		wg.Add(2)
		go func(pair int) {
			defer wg.Done()
			ids[2*pair] = goid()
			i := 0
			for ; forDur > 0 || i < rounds; i++ {
				if forDur > 0 && i%1024 == 0 && time.Now().After(deadline) {
					break
				}
				var t0 time.Time
				if pair == 0 && i%16 == 0 {
					t0 = time.Now()
				}
				ping <- i
				<-pong
				if !t0.IsZero() {
					lat = append(lat, time.Since(t0))
				}
			}
			trips[pair] = int64(i)
			close(ping)
		}(p)
		go func(slot int) {
			defer wg.Done()
			ids[slot] = goid()
			for v := range ping {
				pong <- v
			}
		}(2*p + 1)
	}
	wg.Wait()
	var total int64
	for _, t := range trips {
		total += t
	}
	return ids, time.Since(start), total, lat
}

func quantile(lat []time.Duration, q float64) int64 {
	if len(lat) == 0 {
		return 0
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[int(q*float64(len(lat)-1))].Nanoseconds()
}

func main() {
	pairs := flag.Int("pairs", 4, "goroutine pairs")
	rounds := flag.Int("rounds", 10000, "round trips per pair")
	waitStart := flag.Bool("wait-start", false, "print a ready line, then wait for a line on stdin before working")
	forDur := flag.Duration("for", 0, "bounce for this long instead of -rounds times (benchmarks)")
	loop := flag.Duration("loop", 0, "repeat the workload, pausing this long between runs, until stdin closes or forever (demo mode)")
	flag.Parse()

	emit(report{Event: "ready", GoVersion: runtime.Version(), Pairs: *pairs, Rounds: *rounds})
	if *waitStart {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	for {
		ids, elapsed, trips, lat := run(*pairs, *rounds, *forDur)
		emit(report{Event: "done", Pairs: *pairs, Rounds: *rounds, RoundTrips: trips, Goids: ids, ElapsedNs: elapsed.Nanoseconds(), P50Ns: quantile(lat, 0.5), P99Ns: quantile(lat, 0.99)})
		if *loop == 0 {
			return
		}
		time.Sleep(*loop)
	}
}
