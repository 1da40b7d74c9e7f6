// Command httpload is a closed-loop HTTP load generator: CONNS clients, each
// sending its next request as soon as the previous answer arrived, for a fixed
// time. It prints one JSON line: requests completed, errors, throughput and
// latency quantiles (measured per request, after a warm-up).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

type result struct {
	Event    string  `json:"event"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	RPS      float64 `json:"rps"`
	P50Us    float64 `json:"p50_us"`
	P99Us    float64 `json:"p99_us"`
}

func main() {
	url := flag.String("url", "", "URL to request")
	conns := flag.Int("conns", 32, "concurrent closed-loop clients")
	duration := flag.Duration("duration", 5*time.Second, "measured time")
	warmup := flag.Duration("warmup", time.Second, "unmeasured time first")
	flag.Parse()
	transport := &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns}
	client := &http.Client{Transport: transport}
	start := time.Now().Add(*warmup)
	end := start.Add(*duration)
	var mu sync.Mutex
	var lat []time.Duration
	errors := 0
	var wg sync.WaitGroup
	for c := 0; c < *conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for {
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				resp, err := client.Get(*url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if t0.Before(start) {
					continue
				}
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errors += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3
	}
	out, _ := json.Marshal(result{Event: "done", Requests: len(lat), Errors: errors, RPS: float64(len(lat)) / duration.Seconds(), P50Us: q(0.5), P99Us: q(0.99)})
	fmt.Println(string(out))
	if errors > 0 {
		os.Exit(1)
	}
}
