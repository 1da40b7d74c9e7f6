// leaky leaks goroutines at a known line, beside goroutines that wait
// without leaking, so that a leak watch can be held to both: after "go" on
// stdin, every -every a request gives up on its answer and leaves the
// goroutine computing it blocked forever on a channel send (the line
// marked "leaks here"), while a steady pool of workers takes jobs from a
// channel and idle goroutines wait on one that is never closed. "stop"
// stops both and prints how many goroutines leaked; "exit" exits.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

var (
	leaked atomic.Int64
	done   atomic.Int64
)

func idler(never <-chan struct{}) {
	<-never
}

func worker(jobs <-chan int) {
	for j := range jobs {
		done.Add(int64(j & 1))
	}
}

// handle starts the answer's computation and, like a caller that timed
// out, does not wait for it: no one will ever receive from answer.
func handle() {
	answer := make(chan int)
	leaked.Add(1)
	go func() {
		answer <- 42 // leaks here
	}()
}

func emit(v map[string]any) {
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}

func main() {
	idle := flag.Int("idle", 30, "goroutines waiting forever from the start")
	workers := flag.Int("workers", 20, "workers of the steady pool")
	every := flag.Duration("every", 50*time.Millisecond, "one request that leaks this often")
	flag.Parse()
	never := make(chan struct{})
	for i := 0; i < *idle; i++ {
		go idler(never)
	}
	jobs := make(chan int)
	for i := 0; i < *workers; i++ {
		go worker(jobs)
	}
	emit(map[string]any{"event": "ready", "pid": os.Getpid(), "idle": *idle, "workers": *workers})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "go":
			wg.Add(2)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case jobs <- i:
					case <-stop:
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			go func() {
				defer wg.Done()
				t := time.NewTicker(*every)
				defer t.Stop()
				for {
					select {
					case <-t.C:
						handle()
					case <-stop:
						return
					}
				}
			}()
		case "stop":
			close(stop)
			wg.Wait()
			emit(map[string]any{"event": "stopped", "leaked": leaked.Load()})
		case "exit":
			return
		}
	}
}
