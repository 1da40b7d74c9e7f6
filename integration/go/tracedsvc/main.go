// tracedsvc is a gRPC service instrumented with the OpenTelemetry Go SDK,
// for gort's trace-linkage tests and demo. Every request runs in a server
// span; some requests inject a stall of known size inside their span:
//
//   - runnable: the handler yields while a CPU hog holds the only P
//     (run it with GOMAXPROCS=1), so it waits runnable for the hog's spin;
//   - gc: the handler forces a garbage collection over a pointer-heavy heap;
//   - mutex: the handler locks a mutex another goroutine holds for 20 ms;
//   - fanout: the handler starts a goroutine that locks that mutex, and
//     waits for it (the wait is the started goroutine's, not the span's own);
//   - select: the handler waits 15 ms in a select on a timer, an ordinary
//     wait (as for a backend's answer), which is no stall;
//   - assist: the handler starts a GC cycle and allocates pointer-heavy
//     memory until the cycle ends, so it pays for the GC's marking in
//     assists; what it measured is the runtime's own assist time over the
//     cycle (/cpu/classes/gc/mark/assist). That total is the handler's own
//     only if nothing else allocates meanwhile: the load generator sends
//     nothing else while an assist request is in flight, and the handler
//     flushes the span exporter first, so no export batch is encoded (and
//     pays assists of its own) during the cycle.
//
// An "order" request is the realistic one of the linkage bench (order.go):
// 1 ms of CPU work, a downstream gRPC call, JSON.
//
// The handler measures what it suffered itself and writes one JSON line per
// injection to -truth; at exit it writes the id of every span it ended to
// -ended. The same binary is the load generator (-load ADDR).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

var (
	listen     = flag.String("listen", "127.0.0.1:0", "gRPC listen address (serve mode)")
	otlp       = flag.String("otlp", "127.0.0.1:4317", "OTLP/gRPC endpoint the spans go to (gort)")
	processor  = flag.String("processor", "batch", "span processor: batch (spans leave after their End) or simple (at End, before gort reads the probes)")
	truthPath  = flag.String("truth", "", "write one JSON line per injected stall here")
	endedPath  = flag.String("ended", "", "write the ids of every span ended here at exit")
	heapMB     = flag.Int("heap-mb", 32, "pointer-heavy live heap, so a forced GC takes a while to mark")
	load       = flag.String("load", "", "load mode: send requests to this gRPC address")
	clients    = flag.Int("clients", 4, "load mode: concurrent clients")
	rate       = flag.Float64("rate", 200, "load mode: requests per second in all (0: each client sends its next request as soon as the last is answered, to find the saturation throughput)")
	kind       = flag.String("kind", "plain", "load mode: the request sent: plain (a span, 20 µs of work) or order (1 ms of work, a downstream call, JSON)")
	stallEvery = flag.Duration("stall-every", 300*time.Millisecond, "load mode: inject a stall this often (the kinds of -stalls in turn; 0: never)")
	stallKinds = flag.String("stalls", "runnable,gc,mutex,fanout,select,assist", "load mode: the stalls injected, in turn")
	duration   = flag.Duration("duration", 10*time.Second, "load mode: how long")
	hogSpin    = flag.Duration("hog", 8*time.Millisecond, "runnable stall: how long the hog spins (under the runtime's 10 ms preemption)")
	mutexHold  = flag.Duration("mutex-hold", 20*time.Millisecond, "mutex stall: how long the lock is held")
)

const method = "/gort.demo.Work/Do"

type truth struct {
	Kind       string `json:"kind"`
	TraceID    string `json:"trace_id"`
	SpanID     string `json:"span_id"`
	InjectedNs int64  `json:"injected_ns"`
	StartUnix  int64  `json:"start_unix_ns"`
	EndUnix    int64  `json:"end_unix_ns"`
}

type server struct {
	tracer trace.Tracer
	hog    chan time.Duration
	hogged chan struct{}
	mu     sync.Mutex
	holdMu chan chan struct{}
	truths chan truth
	heap   []*node
	// flush exports the spans ended so far, so the exporter has nothing
	// to encode while an assist is measured.
	flush func()
	// orders is the downstream service of order requests (nil: none).
	orders *orderClient
}

// A node of two pointers: marking scans both, sweeping sees the same spans
// as for one, so a forced GC is dominated by the mark the handler waits for.
type node struct {
	next  *node
	other *node
}

// spin burns CPU for d without blocking.
// assistSink keeps what assist allocates reachable for a while, so the
// allocations are real and the heap grows under the mark.
var assistSink [4096]*node

// assist starts a GC cycle and allocates until it has ended; it returns the
// runtime's assist time over the cycle.
func assist() time.Duration {
	samples := []metrics.Sample{{Name: "/cpu/classes/gc/mark/assist:cpu-seconds"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(samples)
	before, cycles := samples[0].Value.Float64(), samples[1].Value.Uint64()
	go runtime.GC()
	// Let it stop the world and start the mark before allocating.
	runtime.Gosched()
	for i := 0; ; i++ {
		for j := 0; j < 256; j++ {
			assistSink[(i*256+j)%len(assistSink)] = &node{}
		}
		metrics.Read(samples)
		if samples[1].Value.Uint64() > cycles {
			break
		}
	}
	return time.Duration((samples[0].Value.Float64() - before) * 1e9)
}

func spin(d time.Duration) {
	t0 := time.Now()
	for time.Since(t0) < d {
	}
}

func (s *server) hogLoop() {
	for d := range s.hog {
		spin(d)
		s.hogged <- struct{}{}
	}
}

func (s *server) holderLoop() {
	for locked := range s.holdMu {
		s.mu.Lock()
		close(locked)
		time.Sleep(*mutexHold)
		s.mu.Unlock()
	}
}

func (s *server) do(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	ctx, span := s.tracer.Start(ctx, "work "+req.Value, trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	spin(20 * time.Microsecond)
	var injected time.Duration
	start := time.Now()
	switch req.Value {
	case "runnable":
		// The hog becomes runnable; this goroutine yields and waits
		// runnable until the hog has spun and parked again.
		s.hog <- *hogSpin
		t0 := time.Now()
		// The scheduler now and then runs a yielding goroutine again at
		// once (its fairness check of the global queue): yield until the
		// hog is done, so the wait is the hog's whole spin.
		for done := false; !done; {
			runtime.Gosched()
			select {
			case <-s.hogged:
				done = true
			default:
			}
		}
		injected = time.Since(t0)
	case "gc":
		t0 := time.Now()
		runtime.GC()
		injected = time.Since(t0)
	case "mutex":
		locked := make(chan struct{})
		s.holdMu <- locked
		<-locked
		t0 := time.Now()
		s.mu.Lock() // stall site: mutex
		injected = time.Since(t0)
		s.mu.Unlock()
	case "fanout":
		// The started goroutine runs first and waits for the go-ahead, so
		// its lock wait is the holder's 20 ms, not time spent runnable
		// behind others on the only P before it reached the lock.
		running, ahead := make(chan struct{}), make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			close(running)
			<-ahead
			t0 := time.Now()
			s.mu.Lock() // stall site: fanout
			injected = time.Since(t0)
			s.mu.Unlock()
		}()
		<-running
		locked := make(chan struct{})
		s.holdMu <- locked
		<-locked
		close(ahead)
		wg.Wait()
	case "assist":
		s.flush()
		start = time.Now()
		injected = assist()
	case "order":
		answer, err := s.handleOrder(ctx, span.SpanContext().SpanID().String())
		return wrapperspb.String(answer), err
	case "select":
		t0 := time.Now()
		select {
		case <-time.After(15 * time.Millisecond):
		case <-ctx.Done():
		}
		injected = time.Since(t0)
	}
	if injected > 0 {
		sc := span.SpanContext()
		s.truths <- truth{req.Value, sc.TraceID().String(), sc.SpanID().String(), injected.Nanoseconds(), start.UnixNano(), time.Now().UnixNano()}
	}
	_ = ctx
	return wrapperspb.String("ok " + req.Value), nil
}

// endedIDs records the id of every span the SDK ended.
type endedIDs struct {
	mu  sync.Mutex
	ids []string
}

func (e *endedIDs) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (e *endedIDs) OnEnd(s sdktrace.ReadOnlySpan) {
	e.mu.Lock()
	e.ids = append(e.ids, s.SpanContext().TraceID().String()+"/"+s.SpanContext().SpanID().String())
	e.mu.Unlock()
}
func (e *endedIDs) Shutdown(context.Context) error   { return nil }
func (e *endedIDs) ForceFlush(context.Context) error { return nil }

func serve() {
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(*otlp), otlptracegrpc.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	var sp sdktrace.SpanProcessor
	switch *processor {
	case "simple":
		sp = sdktrace.NewSimpleSpanProcessor(exp)
	default:
		sp = sdktrace.NewBatchSpanProcessor(exp, sdktrace.WithBatchTimeout(200*time.Millisecond))
	}
	ended := &endedIDs{}
	res := resource.NewSchemaless(semconv.ServiceName("tracedsvc"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(ended), sdktrace.WithSpanProcessor(sp), sdktrace.WithResource(res))
	s := &server{
		tracer: tp.Tracer("gort.dev/tracedsvc"),
		hog:    make(chan time.Duration),
		hogged: make(chan struct{}, 1),
		holdMu: make(chan chan struct{}),
		truths: make(chan truth, 1024),
		flush:  func() { _ = tp.ForceFlush(ctx) },
	}
	// A linked list: marking chases every pointer, sweeping sees few spans.
	var head *node
	nodes := make([]*node, 0, *heapMB<<20/16)
	for i := 0; i < *heapMB<<20/16; i++ {
		n := &node{next: head}
		if len(nodes) > 0 {
			n.other = nodes[(i*7919)%len(nodes)]
		}
		nodes = append(nodes, n)
		head = n
	}
	nodes = nil
	s.heap = append(s.heap, head)
	calibrate()
	if s.orders, err = newOrderClient(); err != nil {
		log.Fatal(err)
	}
	go s.hogLoop()
	go s.holderLoop()
	var truthFile *os.File
	if *truthPath != "" {
		if truthFile, err = os.Create(*truthPath); err != nil {
			log.Fatal(err)
		}
	}
	truthsDone := make(chan struct{})
	go func() {
		enc := json.NewEncoder(os.Stdout)
		if truthFile != nil {
			enc = json.NewEncoder(truthFile)
		}
		for t := range s.truths {
			_ = enc.Encode(t)
		}
		close(truthsDone)
	}()

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	g := grpc.NewServer()
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: "gort.demo.Work",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Do",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				req := new(wrapperspb.StringValue)
				if err := dec(req); err != nil {
					return nil, err
				}
				return s.do(ctx, req)
			},
		}},
	}, s)
	fmt.Printf("{\"event\":\"listening\",\"addr\":%q,\"pid\":%d}\n", lis.Addr().String(), os.Getpid())
	go func() { _ = g.Serve(lis) }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	g.GracefulStop()
	_ = tp.Shutdown(ctx)
	close(s.truths)
	<-truthsDone
	if truthFile != nil {
		_ = truthFile.Close()
	}
	if *endedPath != "" {
		f, err := os.Create(*endedPath)
		if err != nil {
			log.Fatal(err)
		}
		ended.mu.Lock()
		for _, id := range ended.ids {
			fmt.Fprintln(f, id)
		}
		ended.mu.Unlock()
		_ = f.Close()
	}
	runtime.KeepAlive(s.heap)
	fmt.Printf("{\"event\":\"stopped\",\"spans_ended\":%d}\n", len(ended.ids))
}

func loadGen() {
	conn, err := grpc.NewClient(*load, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	var sent, failed, stalls atomic.Int64
	var latMu sync.Mutex
	var lats []time.Duration
	deadline := time.Now().Add(*duration)
	kinds := strings.Split(*stallKinds, ",")
	// An assist request goes alone: the runtime's assist total over its
	// cycle is its ground truth, and other requests would assist too.
	var alone sync.RWMutex
	var wg sync.WaitGroup
	if *stallEvery > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Add(*stallEvery).Before(deadline); i++ {
				time.Sleep(*stallEvery)
				out := new(wrapperspb.StringValue)
				kind := kinds[i%len(kinds)]
				if kind == "assist" {
					alone.Lock()
				}
				if err := conn.Invoke(context.Background(), method, wrapperspb.String(kind), out); err != nil {
					failed.Add(1)
				} else {
					stalls.Add(1)
				}
				if kind == "assist" {
					alone.Unlock()
				}
			}
		}()
	}
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			next := func() {}
			if *rate > 0 {
				// Clients spread over the interval: started together,
				// their ticks would arrive as bursts of -clients requests.
				interval := time.Duration(float64(*clients) * float64(time.Second) / *rate)
				time.Sleep(interval * time.Duration(c) / time.Duration(*clients))
				tick := time.NewTicker(interval)
				defer tick.Stop()
				next = func() { <-tick.C }
			}
			for time.Now().Before(deadline) {
				next()
				out := new(wrapperspb.StringValue)
				alone.RLock()
				t0 := time.Now()
				err := conn.Invoke(context.Background(), method, wrapperspb.String(*kind), out)
				alone.RUnlock()
				if err != nil {
					failed.Add(1)
				} else {
					sent.Add(1)
					latMu.Lock()
					lats = append(lats, time.Since(t0))
					latMu.Unlock()
				}
			}
		}(c)
	}
	wg.Wait()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	q := func(f float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return float64(lats[int(f*float64(len(lats)-1))].Microseconds()) / 1000
	}
	fmt.Printf("{\"event\":\"load-done\",\"plain\":%d,\"stalls\":%d,\"failed\":%d,\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n", sent.Load(), stalls.Load(), failed.Load(), q(0.5), q(0.99))
}

func main() {
	flag.Parse()
	if *calibrateOnly {
		calibrate()
		fmt.Printf("{\"event\":\"calibrated\",\"blocks\":%d}\n", orderBlocks)
		return
	}
	if *load != "" {
		loadGen()
		return
	}
	serve()
}
