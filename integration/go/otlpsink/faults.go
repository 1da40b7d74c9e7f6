package main

// An upstream that misbehaves on purpose, for gort's retry tests: the first
// -faults trace exports (all with -faults -1) get the -fault answer, a gRPC
// status code by name, with a RetryInfo of -retry-after when set,
// "stall": the request is taken and never answered, or "partial": the spans
// are kept and the answer is a partial success rejecting one of them. Every
// trace export is announced on stdout with its answer, time and
// authorization header, so a test can count attempts and the gaps between
// them and see what the exporter sent.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
)

const traceExport = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

type faults struct {
	answer     string
	code       codes.Code
	left       int
	retryAfter time.Duration
	mu         sync.Mutex
	n          int
}

func newFaults(answer string, count int, retryAfter time.Duration) (*faults, error) {
	f := &faults{answer: answer, left: count, retryAfter: retryAfter}
	if answer == "stall" || answer == "partial" || answer == "" {
		return f, nil
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if strings.EqualFold(c.String(), answer) {
			f.code = c
			return f, nil
		}
	}
	return nil, fmt.Errorf("-fault %q: not a gRPC code name, stall nor partial", answer)
}

// next numbers an attempt and says whether it gets the fault.
func (f *faults) next() (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.answer == "" || f.left == 0 {
		return f.n, false
	}
	if f.left > 0 {
		f.left--
	}
	return f.n, true
}

func (f *faults) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if info.FullMethod != traceExport {
		return handler(ctx, req)
	}
	n, faulty := f.next()
	answer := "ok"
	if faulty {
		answer = f.answer
	}
	auth := strings.Join(metadata.ValueFromIncomingContext(ctx, "authorization"), ",")
	fmt.Printf("{\"event\":\"attempt\",\"n\":%d,\"answer\":%q,\"t_ns\":%d,\"auth\":%q}\n", n, answer, time.Now().UnixNano(), auth)
	if !faulty {
		return handler(ctx, req)
	}
	if f.answer == "partial" {
		if _, err := handler(ctx, req); err != nil {
			return nil, err
		}
		return &coltrace.ExportTraceServiceResponse{PartialSuccess: &coltrace.ExportTracePartialSuccess{
			RejectedSpans: 1, ErrorMessage: "injected partial success"}}, nil
	}
	if f.answer == "stall" {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	st := status.New(f.code, "injected fault")
	if f.retryAfter > 0 {
		if with, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(f.retryAfter)}); err == nil {
			st = with
		}
	}
	return nil, st.Err()
}
