package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// counter is the benchmark's last hop: it counts spans and, for spans whose
// start time is set (the load generator sets it to the moment it sent
// them), the delay from sending to arriving here, one sample per request.
type counter struct {
	coltrace.UnimplementedTraceServiceServer
	spans   atomic.Int64
	mu      sync.Mutex
	latency []time.Duration
}

func (c *counter) Export(ctx context.Context, r *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	now := time.Now()
	var n int64
	oldest := uint64(0)
	for _, rs := range r.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += int64(len(ss.Spans))
			for _, sp := range ss.Spans {
				if sp.StartTimeUnixNano != 0 && (oldest == 0 || sp.StartTimeUnixNano < oldest) {
					oldest = sp.StartTimeUnixNano
				}
			}
		}
	}
	c.spans.Add(n)
	if oldest != 0 {
		c.mu.Lock()
		c.latency = append(c.latency, now.Sub(time.Unix(0, int64(oldest))))
		c.mu.Unlock()
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

func quantile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(q*float64(len(sorted)-1))].Microseconds()) / 1000
}

// count serves until SIGTERM, then prints what it saw as one JSON line.
func count(srv *grpc.Server, serve func()) {
	c := &counter{}
	coltrace.RegisterTraceServiceServer(srv, c)
	go serve()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	c.mu.Lock()
	sort.Slice(c.latency, func(i, j int) bool { return c.latency[i] < c.latency[j] })
	out, _ := json.Marshal(map[string]any{
		"event": "counted", "spans": c.spans.Load(), "samples": len(c.latency),
		"p50_ms": quantile(c.latency, 0.5), "p99_ms": quantile(c.latency, 0.99), "max_ms": quantile(c.latency, 1),
	})
	fmt.Println(string(out))
	os.Exit(0)
}
