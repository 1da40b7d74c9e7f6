// parked holds goroutines parked in known places — channel receive and
// send, a mutex, a condition variable, a select, a sleep, a network accept
// and read, a WaitGroup — each line marked "park: " and the function that
// waits there — runs two GCs (the second stamps each waiting goroutine's waitsince
// with the first's end), then takes its own goroutine dump with runtime.Stack at that quiescent moment
// and writes it to -dump, so that a dump taken from outside can be checked
// against it. It then waits to be killed.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"time"
)

var (
	work  = make(chan int)
	full  = make(chan int)
	mu    sync.Mutex
	cond  = sync.NewCond(&sync.Mutex{})
	never = make(chan struct{})
	group sync.WaitGroup
	// Both ends of the connection reader waits on, kept reachable: a
	// collected conn would be closed by its finalizer during the GCs.
	conns []net.Conn
)

//go:noinline
func worker() {
	for range work { // park: main.worker
	}
}

// receive is small enough to be inlined into its callers: the dump must
// show it as a frame of its own all the same.
func receive(c chan int) int { return <-c } // park: main.receive

//go:noinline
func inlinedReceiver() {
	receive(work)
}

//go:noinline
func sender() {
	full <- 1
	full <- 2 // park: main.sender
}

//go:noinline
func locker() {
	mu.Lock() // park: main.locker
	mu.Unlock()
}

//go:noinline
func waiter() {
	cond.L.Lock()
	cond.Wait() // park: main.waiter
	cond.L.Unlock()
}

//go:noinline
func selector() {
	select { // park: main.selector
	case <-never:
	case <-work:
	}
}

//go:noinline
func sleeper() {
	time.Sleep(time.Hour) // park: main.sleeper
}

//go:noinline
func acceptor(l net.Listener) {
	l.Accept() // park: main.acceptor
}

//go:noinline
func reader(c net.Conn) {
	c.Read(make([]byte, 1)) // park: main.reader
}

//go:noinline
func grouper() {
	group.Wait() // park: main.grouper
}

func goid() int {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	var id int
	fmt.Sscanf(string(buf), "goroutine %d ", &id)
	return id
}

func main() {
	dump := flag.String("dump", "", "where to write the process's own goroutine dump")
	flag.Parse()
	go func() { <-full }()
	mu.Lock()
	for i := 0; i < 3; i++ {
		go worker()
	}
	go inlinedReceiver()
	go sender()
	go locker()
	go waiter()
	go selector()
	go sleeper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go acceptor(l)
	quiet, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	client, err := net.Dial("tcp", quiet.Addr().String())
	if err != nil {
		panic(err)
	}
	server, err := quiet.Accept()
	if err != nil {
		panic(err)
	}
	conns = append(conns, client, server)
	go reader(client)
	group.Add(1)
	go grouper()
	go func() {
		// Long enough for every goroutine above, and main, to park.
		time.Sleep(500 * time.Millisecond)
		// Two GCs while everything is parked. A cycle's stack scan stamps
		// each waiting goroutine's waitsince, if unset, with the time the
		// previous cycle's mark termination began (0 during the first
		// cycle), so after the second one every waitsince lies within the
		// first runtime.GC call when no cycle ran before (gcs_before 0).
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		gcStart := time.Now()
		runtime.GC()
		gcEnd := time.Now()
		runtime.GC()
		runtime.ReadMemStats(&after)
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		if err := os.WriteFile(*dump, buf, 0o644); err != nil {
			panic(err)
		}
		out, _ := json.Marshal(map[string]any{
			"event": "ready", "dumper": goid(), "pid": os.Getpid(), "gcs_before": before.NumGC,
			"gcs_after":        after.NumGC,
			"gc_start_unix_ns": gcStart.UnixNano(), "gc_end_unix_ns": gcEnd.UnixNano(),
		})
		fmt.Println(string(out))
	}()
	<-never // park: main.main
}
