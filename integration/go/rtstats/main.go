// Command rtstats runs a load with scheduling, allocation and GC, and at
// instants a test asks for it stops the load and reports the runtime's own
// statistics (runtime/metrics) twice: once before the test reads them from
// outside (with gort) and once after, with nothing in between but printing
// the first report and waiting for the test. A value read from outside must
// lie between the two.
//
// Protocol (one line each on stdin): "go" runs the load for -load, then
// stops it and prints {"event":"before",...}; "after" prints
// {"event":"after",...}; "exit" ends.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

var names = []string{
	"/sched/latencies:seconds",
	"/gc/pauses:seconds",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/os-stacks:bytes",
	"/gc/gomemlimit:bytes",
	"/gc/heap/allocs:bytes",
	"/gc/heap/allocs:objects",
	"/gc/heap/goal:bytes",
	"/gc/cycles/total:gc-cycles",
	"/sched/gomaxprocs:threads",
	"/gc/gogc:percent",
}

type report struct {
	Event     string              `json:"event"`
	Pid       int                 `json:"pid"`
	GoVersion string              `json:"go_version"`
	Scalars   map[string]uint64   `json:"scalars"`
	Hists     map[string][]uint64 `json:"histograms"`
}

var (
	sink atomic.Pointer[[]byte]
)

// load runs goroutines that allocate (a GC every few milliseconds) and
// yield to each other until stop is closed.
func load(stop chan struct{}, workers int) {
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			ping := make(chan int)
			go func() {
				for v := range ping {
					_ = v
				}
			}()
			defer close(ping)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				b := make([]byte, 64+(i%4096))
				sink.Store(&b)
				if i%16 == 0 {
					big := make([]byte, 40_000)
					sink.Store(&big)
				}
				ping <- i
				if i%64 == 0 {
					runtime.Gosched()
				}
			}
		}(w)
	}
	wg.Wait()
}

func read(samples []metrics.Sample, event string) report {
	metrics.Read(samples)
	r := report{Event: event, Pid: os.Getpid(), GoVersion: runtime.Version(),
		Scalars: map[string]uint64{}, Hists: map[string][]uint64{}}
	for _, s := range samples {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			r.Scalars[s.Name] = s.Value.Uint64()
		case metrics.KindFloat64Histogram:
			r.Hists[s.Name] = s.Value.Float64Histogram().Counts
		}
	}
	return r
}

func main() {
	loadFor := flag.Duration("load", 300*time.Millisecond, "how long the load runs before each instant")
	workers := flag.Int("workers", 4, "allocating goroutines")
	flag.Parse()
	samples := make([]metrics.Sample, len(names))
	for i, n := range names {
		samples[i].Name = n
	}
	// A first read allocates the histograms; later reads reuse them.
	metrics.Read(samples)
	out := json.NewEncoder(os.Stdout)
	fmt.Printf("{\"event\":\"ready\",\"pid\":%d}\n", os.Getpid())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "go":
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() { load(stop, *workers); close(done) }()
			time.Sleep(*loadFor)
			close(stop)
			<-done
			// No collection in flight at the instant: the GC's own
			// goroutines would move the numbers between the two reads.
			runtime.GC()
			before := read(samples, "before")
			_ = out.Encode(before)
		case "after":
			// Read first: nothing may run between the test's read and this.
			after := read(samples, "after")
			_ = out.Encode(after)
		case "exit":
			return
		}
	}
}
