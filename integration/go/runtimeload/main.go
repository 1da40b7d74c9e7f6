// Command runtimeload produces known scheduler and GC stalls and reports the
// Go runtime's own accounting of them (runtime/metrics) over exactly the
// window it worked in, so a test can hold gort's measurements against it.
//
// Workloads: "sched" runs CPU-bound goroutines that yield to each other
// (run it with GOMAXPROCS=1: every goroutine waits for the others), "gc"
// allocates in bursts and forces collections, "block" sleeps, waits on a
// held mutex and on a slow channel, timing each wait itself, "steady"
// keeps goroutines sleeping in a loop, counting their sleeps, and prints
// the count for every line on stdin (a test reads it when gort attaches
// and when gort stops), "system" leaves the runtime's own goroutines idle
// (GC workers, sweeper, scavenger) while application goroutines wait on a
// channel, and reports runtime.NumGoroutine().
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var sink [][]byte

func schedLoad(d time.Duration, workers int) {
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := 0
			for time.Now().Before(deadline) {
				for j := 0; j < 20000; j++ {
					x += j
				}
				runtime.Gosched()
			}
			_ = x
		}()
	}
	wg.Wait()
}

func gcLoad(cycles int) {
	for i := 0; i < cycles; i++ {
		for j := 0; j < 2000; j++ {
			sink = append(sink, make([]byte, 1024))
		}
		sink = nil
		runtime.GC()
	}
}

// blockLoad blocks goroutines in known ways at once and returns how long
// each kind of wait lasted as the goroutines themselves measured it. Every
// time.Sleep counts as "sleep" to the runtime, so all of them are timed.
// parkLoad parks n goroutines on each of a channel receive, a locked mutex
// and a long sleep, says so, and holds them there until stdin has another
// line: a known population for a census of live goroutines.
func parkLoad(n int) {
	ch := make(chan int)
	var mu sync.Mutex
	mu.Lock()
	var started sync.WaitGroup
	started.Add(3 * n)
	for i := 0; i < n; i++ {
		go func() { started.Done(); <-ch }()
		go func() { started.Done(); mu.Lock(); mu.Unlock() }()
		go func() { started.Done(); time.Sleep(time.Hour) }()
	}
	started.Wait()
	time.Sleep(100 * time.Millisecond) // let the last ones reach their wait
	fmt.Printf("{\"event\":\"parked\",\"per_kind\":%d}\n", n)
	bufio.NewReader(os.Stdin).ReadString('\n')
}

// steadyLoad sleeps 10 ms in a loop in each of `workers` goroutines, and
// answers every stdin line with the sleeps completed so far, until stdin
// closes or says "stop".
func steadyLoad(workers int) {
	var sleeps atomic.Int64
	for i := 0; i < workers; i++ {
		go func() {
			for {
				time.Sleep(10 * time.Millisecond)
				sleeps.Add(1)
			}
		}()
	}
	start := time.Now()
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadString('\n')
		if err != nil || strings.TrimSpace(line) == "stop" {
			return
		}
		fmt.Printf("{\"event\":\"count\",\"sleeps\":%d,\"t_ns\":%d}\n", sleeps.Load(), time.Since(start).Nanoseconds())
	}
}

// systemLoad makes the runtime start its own goroutines (a few GC cycles
// start the background mark workers) and parks `n` application goroutines
// on a channel, then reports runtime.NumGoroutine() (which leaves the
// runtime's goroutines out) and waits for stdin: a census now must count
// the same application goroutines, and the idle runtime goroutines apart.
func systemLoad(n int) {
	for i := 0; i < 3; i++ {
		sink = append(sink[:0], make([]byte, 1<<20))
		runtime.GC()
	}
	ch := make(chan int)
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		go func() { started.Done(); <-ch }()
	}
	started.Wait()
	time.Sleep(100 * time.Millisecond)
	fmt.Printf("{\"event\":\"parked\",\"num_goroutine\":%d}\n", runtime.NumGoroutine())
	bufio.NewReader(os.Stdin).ReadString('\n')
}

func blockLoad() (sleepNs, mutexNs, chanNs int64) {
	var wg sync.WaitGroup
	var sleeps [3]int64 // one per sleeping goroutine: no shared writes
	timedSleep := func(slot int, d time.Duration) {
		t := time.Now()
		time.Sleep(d)
		sleeps[slot] += time.Since(t).Nanoseconds()
	}
	wg.Add(4)
	go func() { // 20 x 50 ms of sleep
		defer wg.Done()
		for i := 0; i < 20; i++ {
			timedSleep(0, 50*time.Millisecond)
		}
	}()
	var mu sync.Mutex
	held, done := make(chan struct{}), make(chan struct{})
	go func() { // holds the mutex 10 x 20 ms, each time until the waiter is through
		defer wg.Done()
		for i := 0; i < 10; i++ {
			mu.Lock()
			held <- struct{}{}
			timedSleep(1, 20*time.Millisecond)
			mu.Unlock()
			<-done
		}
	}()
	go func() { // waits for the held mutex each time
		defer wg.Done()
		for i := 0; i < 10; i++ {
			<-held
			t := time.Now()
			mu.Lock()
			mutexNs += time.Since(t).Nanoseconds()
			mu.Unlock()
			done <- struct{}{}
		}
	}()
	ch := make(chan int)
	go func() { // receives 10 values sent 30 ms apart
		defer wg.Done()
		go func() {
			for i := 0; i < 10; i++ {
				timedSleep(2, 30*time.Millisecond)
				ch <- i
			}
		}()
		for i := 0; i < 10; i++ {
			t := time.Now()
			<-ch
			chanNs += time.Since(t).Nanoseconds()
		}
	}()
	wg.Wait()
	return sleeps[0] + sleeps[1] + sleeps[2], mutexNs, chanNs
}

type histogram struct {
	Name    string    `json:"name"`
	Counts  []uint64  `json:"counts"`
	Buckets []float64 `json:"buckets"`
}

type report struct {
	Event        string      `json:"event"`
	Pid          int         `json:"pid"`
	GoVersion    string      `json:"go_version,omitempty"`
	GcCycles     uint64      `json:"gc_cycles"`
	MarkWorkerNs int64       `json:"gc_mark_worker_ns"`
	SleepNs      int64       `json:"sleep_ns,omitempty"`
	MutexNs      int64       `json:"mutex_wait_ns,omitempty"`
	ChanNs       int64       `json:"chan_wait_ns,omitempty"`
	Histograms   []histogram `json:"histograms,omitempty"`
}

// Metrics gort is compared with; the GC pause one was renamed in Go 1.22.
var names = []string{"/gc/cycles/total:gc-cycles", "/sched/latencies:seconds", "/gc/pauses:seconds", "/sched/pauses/total/gc:seconds",
	// Background mark workers' time (dedicated includes fractional workers),
	// accumulated by the runtime at the end of each cycle.
	"/cpu/classes/gc/mark/dedicated:cpu-seconds", "/cpu/classes/gc/mark/idle:cpu-seconds"}

func read() []metrics.Sample {
	supported := map[string]bool{}
	for _, d := range metrics.All() {
		supported[d.Name] = true
	}
	var s []metrics.Sample
	for _, n := range names {
		if supported[n] {
			s = append(s, metrics.Sample{Name: n})
		}
	}
	metrics.Read(s)
	return s
}

func main() {
	workload := flag.String("workload", "sched", "sched, gc, block or park")
	duration := flag.Duration("duration", 2*time.Second, "sched: how long")
	workers := flag.Int("workers", 4, "sched: CPU-bound goroutines")
	cycles := flag.Int("cycles", 20, "gc: forced collections")
	parked := flag.Int("parked", 100, "park: goroutines parked per kind of wait")
	flag.Parse()

	emit := func(r report) {
		r.Pid = os.Getpid()
		b, err := json.Marshal(r)
		if err != nil {
			fmt.Fprintln(os.Stderr, "runtimeload:", err)
			os.Exit(1)
		}
		fmt.Println(string(b))
	}
	emit(report{Event: "ready", GoVersion: runtime.Version()})
	bufio.NewReader(os.Stdin).ReadString('\n')

	r := report{Event: "done"}
	before := read()
	switch *workload {
	case "sched":
		schedLoad(*duration, *workers)
	case "gc":
		gcLoad(*cycles)
	case "block":
		r.SleepNs, r.MutexNs, r.ChanNs = blockLoad()
	case "park":
		parkLoad(*parked)
	case "steady":
		steadyLoad(*workers)
	case "system":
		systemLoad(*parked)
	}
	after := read()

	for i, s := range after {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			if strings.HasPrefix(s.Name, "/gc/cycles/total") {
				r.GcCycles = s.Value.Uint64() - before[i].Value.Uint64()
			}
		case metrics.KindFloat64:
			if strings.HasPrefix(s.Name, "/cpu/classes/gc/mark/") {
				r.MarkWorkerNs += int64((s.Value.Float64() - before[i].Value.Float64()) * 1e9)
			}
		case metrics.KindFloat64Histogram:
			a, b := s.Value.Float64Histogram(), before[i].Value.Float64Histogram()
			// JSON has no infinities: the open ends become -1 and 1e300.
			h := histogram{Name: s.Name, Buckets: make([]float64, len(a.Buckets)), Counts: make([]uint64, len(a.Counts))}
			for j, v := range a.Buckets {
				switch {
				case math.IsInf(v, -1):
					v = -1
				case math.IsInf(v, 1):
					v = 1e300
				}
				h.Buckets[j] = v
			}
			for j := range a.Counts {
				h.Counts[j] = a.Counts[j] - b.Counts[j]
			}
			r.Histograms = append(r.Histograms, h)
		}
	}
	emit(r)
}
