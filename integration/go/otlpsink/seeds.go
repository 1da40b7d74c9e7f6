package main

import (
	"os"
	"path/filepath"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func str(k, v string) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
}

// writeSeeds writes one export request per signal, in the protobuf and the
// JSON encoding, as the Go OTLP types produce them: the fuzzers' seeds.
func writeSeeds(dir string) error {
	res := &resource.Resource{Attributes: []*common.KeyValue{str("service.name", "seed")}}
	scope := &common.InstrumentationScope{Name: "seed", Version: "1"}
	tr := &coltrace.ExportTraceServiceRequest{ResourceSpans: []*trace.ResourceSpans{{
		Resource: res,
		ScopeSpans: []*trace.ScopeSpans{{Scope: scope, Spans: []*trace.Span{{
			TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), ParentSpanId: []byte("76543210"),
			Name: "GET /", Kind: trace.Span_SPAN_KIND_SERVER, StartTimeUnixNano: 1, EndTimeUnixNano: 2,
			Attributes: []*common.KeyValue{str("http.route", "/")},
			Events:     []*trace.Span_Event{{Name: "e", TimeUnixNano: 1}},
			Status:     &trace.Status{Code: trace.Status_STATUS_CODE_OK},
		}}}},
	}}}
	me := &colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metrics.ResourceMetrics{{
		Resource: res,
		ScopeMetrics: []*metrics.ScopeMetrics{{Scope: scope, Metrics: []*metrics.Metric{
			{Name: "c", Data: &metrics.Metric_Sum{Sum: &metrics.Sum{IsMonotonic: true,
				AggregationTemporality: metrics.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE,
				DataPoints:             []*metrics.NumberDataPoint{{Value: &metrics.NumberDataPoint_AsInt{AsInt: 3}}}}}},
			{Name: "h", Data: &metrics.Metric_Histogram{Histogram: &metrics.Histogram{
				DataPoints: []*metrics.HistogramDataPoint{{Count: 2, BucketCounts: []uint64{1, 1}, ExplicitBounds: []float64{1},
					Exemplars: []*metrics.Exemplar{{TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"),
						Value: &metrics.Exemplar_AsDouble{AsDouble: 0.5}}}}}}}},
		}}},
	}}}
	lo := &collogs.ExportLogsServiceRequest{ResourceLogs: []*logs.ResourceLogs{{
		Resource: res,
		ScopeLogs: []*logs.ScopeLogs{{Scope: scope, LogRecords: []*logs.LogRecord{{
			TimeUnixNano: 1, SeverityText: "INFO", Body: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "hi"}},
		}}}},
	}}}
	for name, m := range map[string]proto.Message{"traces": tr, "metrics": me, "logs": lo} {
		pb, err := proto.Marshal(m)
		if err != nil {
			return err
		}
		js, err := protojson.Marshal(m)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name+".pb"), pb, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name+".json"), js, 0o644); err != nil {
			return err
		}
	}
	return nil
}
