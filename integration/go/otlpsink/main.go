// Command otlpsink is the last hop of gort's pipeline tests: an OTLP/gRPC
// server (grpc-go, the OTLP protobuf types) that writes every span, metric
// data point and log record it receives as one JSON line to -out, so a test
// can compare what arrived with what the service emitted.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip"
)

type item struct {
	Kind    string   `json:"kind"`
	Service string   `json:"service"`
	ID      string   `json:"id,omitempty"`
	Attrs   []string `json:"attrs,omitempty"`
	Body    string   `json:"body,omitempty"`
	Metric  string   `json:"metric,omitempty"`
	// Spans: what trace-linkage tests compare.
	Name   string         `json:"name,omitempty"`
	Scope  string         `json:"scope,omitempty"`
	Parent string         `json:"parent,omitempty"`
	Start  uint64         `json:"start,omitempty"`
	End    uint64         `json:"end,omitempty"`
	Values map[string]any `json:"values,omitempty"`
	// Histogram points: their exemplars.
	Exemplars []exemplar `json:"exemplars,omitempty"`
}

type exemplar struct {
	ID    string  `json:"id"`
	Value float64 `json:"value"`
}

func values(kvs []*common.KeyValue) map[string]any {
	out := map[string]any{}
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *common.AnyValue_StringValue:
			out[kv.Key] = v.StringValue
		case *common.AnyValue_IntValue:
			out[kv.Key] = v.IntValue
		case *common.AnyValue_DoubleValue:
			out[kv.Key] = v.DoubleValue
		case *common.AnyValue_BoolValue:
			out[kv.Key] = v.BoolValue
		}
	}
	return out
}

type sink struct {
	coltrace.UnimplementedTraceServiceServer
	colmetrics.UnimplementedMetricsServiceServer
	collogs.UnimplementedLogsServiceServer
	mu  sync.Mutex
	enc *json.Encoder
	f   *os.File
}

func service(r *resource.Resource) string {
	for _, kv := range r.GetAttributes() {
		if kv.Key == "service.name" {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

func keys(kvs []*common.KeyValue) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, kv.Key)
	}
	return out
}

func (s *sink) write(items []item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		s.enc.Encode(it)
	}
	s.f.Sync()
}

func (s *sink) Export(ctx context.Context, r *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	var items []item
	for _, rs := range r.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				it := item{Kind: "span", Service: service(rs.Resource), ID: hex.EncodeToString(sp.TraceId) + "/" + hex.EncodeToString(sp.SpanId), Attrs: keys(sp.Attributes),
					Name: sp.Name, Scope: ss.GetScope().GetName(), Start: sp.StartTimeUnixNano, End: sp.EndTimeUnixNano, Values: values(sp.Attributes)}
				if len(sp.ParentSpanId) > 0 {
					it.Parent = hex.EncodeToString(sp.TraceId) + "/" + hex.EncodeToString(sp.ParentSpanId)
				}
				items = append(items, it)
			}
		}
	}
	s.write(items)
	return &coltrace.ExportTraceServiceResponse{}, nil
}

type metricsSink struct{ *sink }

func (s metricsSink) Export(ctx context.Context, r *colmetrics.ExportMetricsServiceRequest) (*colmetrics.ExportMetricsServiceResponse, error) {
	var items []item
	for _, rm := range r.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				for _, p := range m.GetHistogram().GetDataPoints() {
					it := item{Kind: "point", Service: service(rm.Resource), Metric: m.Name, Values: values(p.Attributes)}
					for _, e := range p.Exemplars {
						it.Exemplars = append(it.Exemplars, exemplar{hex.EncodeToString(e.TraceId) + "/" + hex.EncodeToString(e.SpanId), e.GetAsDouble()})
					}
					items = append(items, it)
				}
				n := len(m.GetSum().GetDataPoints()) + len(m.GetGauge().GetDataPoints()) + len(m.GetExponentialHistogram().GetDataPoints()) + len(m.GetSummary().GetDataPoints())
				for i := 0; i < n; i++ {
					items = append(items, item{Kind: "point", Service: service(rm.Resource), Metric: m.Name})
				}
			}
		}
	}
	s.write(items)
	return &colmetrics.ExportMetricsServiceResponse{}, nil
}

type logsSink struct{ *sink }

func (s logsSink) Export(ctx context.Context, r *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error) {
	var items []item
	for _, rl := range r.ResourceLogs {
		for _, sl := range rl.ScopeLogs {
			for _, l := range sl.LogRecords {
				items = append(items, item{Kind: "log", Service: service(rl.Resource), Body: l.GetBody().GetStringValue(), Attrs: keys(l.Attributes)})
			}
		}
	}
	s.write(items)
	return &collogs.ExportLogsServiceResponse{}, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	out := flag.String("out", "sink.jsonl", "where to write what arrives")
	countOnly := flag.Bool("count", false, "only count spans and measure their delay since the start time (benchmarks); print it at SIGTERM")
	seeds := flag.String("seeds", "", "write one OTLP export request per signal (protobuf and JSON) to this directory and exit")
	reportFrom := flag.String("report", "", "read a sink file and print the slowest trace an exemplar points to, with gort's runtime breakdown, and exit")
	fault := flag.String("fault", "", "answer trace exports with this gRPC code name (Unavailable, ...) or stall (never answer)")
	faultCount := flag.Int("faults", -1, "how many trace exports get -fault first (-1: all)")
	retryAfter := flag.Duration("retry-after", 0, "a RetryInfo delay to send with -fault")
	flag.Parse()
	if *reportFrom != "" {
		if err := report(*reportFrom); err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		return
	}
	if *seeds != "" {
		if err := writeSeeds(*seeds); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	injected, err := newFaults(*fault, *faultCount, *retryAfter)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(64<<20), grpc.UnaryInterceptor(injected.intercept))
	if *countOnly {
		fmt.Printf("{\"event\":\"ready\",\"addr\":%q}\n", ln.Addr().String())
		count(srv, func() { srv.Serve(ln) })
		return
	}
	// Only a sink that writes creates its file: -count leaves nothing behind.
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := &sink{enc: json.NewEncoder(f), f: f}
	coltrace.RegisterTraceServiceServer(srv, s)
	colmetrics.RegisterMetricsServiceServer(srv, metricsSink{s})
	collogs.RegisterLogsServiceServer(srv, logsSink{s})
	fmt.Printf("{\"event\":\"ready\",\"addr\":%q}\n", ln.Addr().String())
	srv.Serve(ln)
}
