// Command otelapp is a Go service instrumented with the OpenTelemetry Go SDK
// and its OTLP exporters, as gort's users run them. It emits a known set of
// spans, metric points and log records to -endpoint (gRPC or HTTP), then
// prints what it emitted (ids, counts) as one JSON line, so a test can look
// for exactly those items downstream.
//
// With -unended N it then starts N spans it never ends, keeps them all
// alive, and reports where each span object lies (the address gort's probes
// index their span table by).
//
// With -open-span it does not shut down: it leaves one span open, prints its
// report ("open") and waits for a line on stdin, then exits at once, as a
// process that ends mid-span does (or is killed there by the test).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	otelTrace "go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

type report struct {
	Event   string   `json:"event"`
	BigSpan *bigSpan `json:"big_span,omitempty"`
	Spans   []string `json:"spans"` // trace_id/span_id, hex
	Metrics int      `json:"metric_points"`
	Logs    int      `json:"log_records"`
	Error   string   `json:"error,omitempty"`
	// Unended holds the address of each span of -unended.
	Unended []uint64 `json:"unended,omitempty"`
}

// bigSpan is what happened to the one oversize span (-big-span-bytes).
type bigSpan struct {
	Error   string  `json:"error"`
	Seconds float64 `json:"seconds"`
}

func fail(err error) {
	out, _ := json.Marshal(report{Event: "error", Error: err.Error()})
	fmt.Println(string(out))
	os.Exit(1)
}

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:4317", "gort's OTLP endpoint (host:port)")
	protocol := flag.String("protocol", "grpc", "grpc or http")
	spans := flag.Int("spans", 200, "spans to emit")
	logs := flag.Int("logs", 50, "log records to emit")
	service := flag.String("service", "otelapp", "service.name")
	big := flag.Int("big-span-bytes", 0, "first export one span alone with an attribute this large, and report the export's error and duration")
	fastRetry := flag.Bool("fast-retry", false, "retry refused exports after 200 ms (not the SDK's 5 s), for tests")
	caFile := flag.String("ca", "", "grpc only: connect over TLS, trusting this PEM CA (default: plaintext)")
	processor := flag.String("processor", "batch", "span processor: batch, or simple (each span exported, and acknowledged, before its End returns)")
	waitStart := flag.Bool("wait-start", false, "print {\"event\":\"ready\"} and emit nothing until a line arrives on stdin")
	unended := flag.Int("unended", 0, "after emitting, start this many spans that are never ended and report their objects' addresses")
	openSpan := flag.Bool("open-span", false, "after emitting, leave a span open, report (event \"open\") and exit without shutting down at the next stdin line")
	flag.Parse()
	// The simple processor reports a refused export only here: with it, any
	// error becomes the report's "error", so a test never counts a lost span
	// as sent. Logged as the SDK's default handler does.
	var exportErr struct {
		sync.Mutex
		first error
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Print(err)
		exportErr.Lock()
		if exportErr.first == nil {
			exportErr.first = err
		}
		exportErr.Unlock()
	}))
	simpleErr := func() string {
		exportErr.Lock()
		defer exportErr.Unlock()
		if *processor != "simple" || exportErr.first == nil {
			return ""
		}
		return exportErr.first.Error()
	}
	stdin := bufio.NewScanner(os.Stdin)
	ctx := context.Background()
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(*service), attribute.String("test.run", fmt.Sprint(os.Getpid())))

	var (
		te  sdktrace.SpanExporter
		me  sdkmetric.Exporter
		le  sdklog.Exporter
		err error
	)
	if *protocol == "http" {
		te, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(*endpoint), otlptracehttp.WithInsecure())
		if err == nil {
			me, err = otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpoint(*endpoint), otlpmetrichttp.WithInsecure())
		}
		if err == nil {
			le, err = otlploghttp.New(ctx, otlploghttp.WithEndpoint(*endpoint), otlploghttp.WithInsecure())
		}
	} else {
		var creds credentials.TransportCredentials = insecure.NewCredentials()
		if *caFile != "" {
			if creds, err = credentials.NewClientTLSFromFile(*caFile, ""); err != nil {
				fail(err)
			}
		}
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(*endpoint), otlptracegrpc.WithTLSCredentials(creds)}
		if *fastRetry {
			opts = append(opts, otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 200 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: time.Minute}))
		}
		te, err = otlptracegrpc.New(ctx, opts...)
		if err == nil {
			me, err = otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(*endpoint), otlpmetricgrpc.WithTLSCredentials(creds))
		}
		if err == nil {
			le, err = otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(*endpoint), otlploggrpc.WithTLSCredentials(creds))
		}
	}
	if err != nil {
		fail(err)
	}
	sp := sdktrace.NewBatchSpanProcessor(te, sdktrace.WithMaxExportBatchSize(64))
	if *processor == "simple" {
		sp = sdktrace.NewSimpleSpanProcessor(te)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(sp))
	reader := sdkmetric.NewPeriodicReader(me, sdkmetric.WithInterval(time.Hour))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(reader))
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewBatchProcessor(le)))

	tracer := tp.Tracer("gort.dev/otelapp")
	counter, _ := mp.Meter("gort.dev/otelapp").Int64Counter("otelapp.requests")
	hist, _ := mp.Meter("gort.dev/otelapp").Float64Histogram("otelapp.latency")
	logger := lp.Logger("gort.dev/otelapp")

	if *waitStart {
		fmt.Println(`{"event":"ready"}`)
		stdin.Scan()
	}
	r := report{Event: "done", Spans: []string{}}
	if *big > 0 {
		_, span := tracer.Start(ctx, "big")
		span.SetAttributes(attribute.String("big", strings.Repeat("x", *big)))
		span.End()
		started := time.Now()
		err := tp.ForceFlush(ctx)
		r.BigSpan = &bigSpan{Seconds: time.Since(started).Seconds()}
		if err != nil {
			r.BigSpan.Error = err.Error()
		}
	}
	for i := 0; i < *spans; i++ {
		_, span := tracer.Start(ctx, fmt.Sprintf("op-%d", i%5))
		span.SetAttributes(attribute.Int("op.index", i), attribute.String("op.kind", "test"))
		sc := span.SpanContext()
		r.Spans = append(r.Spans, sc.TraceID().String()+"/"+sc.SpanID().String())
		span.End()
		counter.Add(ctx, 1, metric.WithAttributes(attribute.Int("bucket", i%5)))
		hist.Record(ctx, float64(i%10)/1000)
	}
	for i := 0; i < *logs; i++ {
		var rec otellog.Record
		rec.SetBody(attribute.StringValue(fmt.Sprintf("log line %d", i)))
		rec.SetSeverity(otellog.SeverityInfo)
		rec.AddAttributes(attribute.Int("log.index", i))
		logger.Emit(ctx, rec)
	}
	// Five counter series (bucket = i mod 5) and one histogram series.
	r.Metrics = 5 + 1
	r.Logs = *logs
	var keep []otelTrace.Span
	for i := 0; i < *unended; i++ {
		_, span := tracer.Start(ctx, "unended")
		keep = append(keep, span)
		// The interface's data word: the SDK's *recordingSpan, which its
		// span-start probe receives. Go's heap objects never move.
		r.Unended = append(r.Unended, uint64((*[2]uintptr)(unsafe.Pointer(&span))[1]))
	}
	if *openSpan {
		// Nothing ends it: the process exits inside it.
		tracer.Start(ctx, "never ended")
		r.Event, r.Error = "open", simpleErr()
		r.Metrics, r.Logs = 0, 0
		out, _ := json.Marshal(r)
		fmt.Println(string(out))
		stdin.Scan()
		os.Exit(0)
	}
	for _, f := range []func(context.Context) error{tp.Shutdown, mp.Shutdown, lp.Shutdown} {
		if err := f(ctx); err != nil {
			fail(err)
		}
	}
	r.Error = simpleErr()
	runtime.KeepAlive(keep)
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}
