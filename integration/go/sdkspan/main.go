// sdkspan starts and ends one span with the OpenTelemetry Go SDK. It exists
// to be built against every SDK release gort supports, so that
// scripts/gen-offsets-table sdk can read the SDK's struct layout from each build's
// DWARF (for binaries that are stripped of theirs).
package main

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func main() {
	tp := sdktrace.NewTracerProvider()
	_, span := tp.Tracer("sdkspan").Start(context.Background(), "one")
	span.End()
	fmt.Println(span.SpanContext().TraceID())
	_ = tp.Shutdown(context.Background())
}
