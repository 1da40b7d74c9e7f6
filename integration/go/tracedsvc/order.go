package main

// The realistic request ("order"): what a typical grpc-go service does per
// call, for the linkage bench's second service. About 1 ms of CPU work (a
// fixed amount, calibrated once at start, so any cost gort adds shows as
// more CPU and lower throughput rather than being absorbed by a timed
// spin), one downstream gRPC call in a client span of its own, and the
// answer encoded as JSON.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

var (
	downstream    = flag.String("downstream", "", "serve mode: the gRPC address an order request calls (another tracedsvc)")
	orderWork     = flag.Duration("order-work", time.Millisecond, "CPU work per order request, calibrated at start unless -order-blocks is given")
	orderFixed    = flag.Int("order-blocks", 0, "serve mode: sha256 blocks of work per order request (0: calibrate to -order-work); runs compared side by side must share one figure")
	calibrateOnly = flag.Bool("calibrate", false, "print the -order-blocks that make -order-work of CPU here, and exit")
)

// orderBlocks is how many sha256 blocks of 1 KiB an order request hashes.
var orderBlocks int

// calibrate sets orderBlocks: -order-blocks, else how many hashes of a
// 1 KiB block take -order-work here.
func calibrate() {
	if *orderFixed > 0 {
		orderBlocks = *orderFixed
		return
	}
	block := make([]byte, 1024)
	n, t0 := 0, time.Now()
	for time.Since(t0) < 100*time.Millisecond {
		for i := 0; i < 64; i++ {
			sum := sha256.Sum256(block)
			block[0] = sum[0]
		}
		n += 64
	}
	orderBlocks = int(float64(n) * float64(*orderWork) / float64(time.Since(t0)))
}

type item struct {
	SKU      string  `json:"sku"`
	Quantity int     `json:"quantity"`
	Price    float64 `json:"price"`
	Digest   string  `json:"digest"`
}

type order struct {
	ID         string `json:"id"`
	Items      []item `json:"items"`
	Downstream string `json:"downstream"`
}

// metadataCarrier lets the W3C propagator write into outgoing gRPC metadata.
type metadataCarrier metadata.MD

func (c metadataCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (c metadataCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }
func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// orderClient is the connection to the downstream service.
type orderClient struct {
	conn *grpc.ClientConn
}

func newOrderClient() (*orderClient, error) {
	if *downstream == "" {
		return nil, nil
	}
	conn, err := grpc.NewClient(*downstream, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &orderClient{conn: conn}, nil
}

// handleOrder does an order request's work inside the server span in ctx.
func (s *server) handleOrder(ctx context.Context, id string) (string, error) {
	block := make([]byte, 1024)
	copy(block, id)
	o := order{ID: id, Items: make([]item, 0, 16)}
	per := orderBlocks / 16
	for i := 0; i < 16; i++ {
		var sum [32]byte
		for j := 0; j < per; j++ {
			sum = sha256.Sum256(block)
			block[i] = sum[0]
		}
		o.Items = append(o.Items, item{SKU: fmt.Sprintf("sku-%d", i), Quantity: i + 1, Price: float64(sum[1]) / 7, Digest: fmt.Sprintf("%x", sum[:8])})
	}
	if s.orders != nil {
		cctx, span := s.tracer.Start(ctx, "inventory.Reserve", trace.WithSpanKind(trace.SpanKindClient))
		md := metadata.MD{}
		propagation.TraceContext{}.Inject(cctx, metadataCarrier(md))
		out := new(wrapperspb.StringValue)
		err := s.orders.conn.Invoke(metadata.NewOutgoingContext(cctx, md), method, wrapperspb.String("plain"), out)
		span.End()
		if err != nil {
			return "", err
		}
		o.Downstream = out.Value
	}
	b, err := json.Marshal(o)
	return string(b), err
}
