// Command backendsreport is the end of `scripts/demo --backends`: it asks
// the real Prometheus for the slowest exemplar on gort's histograms, then
// the real Jaeger for the trace it points to, and prints what a person
// would click through: the PromQL, the exemplar, the trace's URL, the
// service's span with gort's go.runtime.* attributes and its stall
// children. Only the backends' HTTP query APIs, only the standard library.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The histograms gort attaches exemplars to, as Prometheus names them.
var histograms = []string{
	"go_schedule_duration_seconds",
	"go_memory_gc_pause_duration_seconds",
	"gort_goroutine_blocked_duration_seconds",
}

type exemplar struct {
	histogram string
	series    map[string]string
	traceID   string
	value     float64
}

type jaegerSpan struct {
	SpanID        string  `json:"spanID"`
	OperationName string  `json:"operationName"`
	StartTime     float64 `json:"startTime"`
	Duration      float64 `json:"duration"`
	References    []struct {
		SpanID string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

func (s jaegerSpan) tag(key string) (any, bool) {
	for _, t := range s.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return nil, false
}

func getJSON(u string, into any) error {
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

func slowestExemplar(prometheus, service string, since time.Duration) (*exemplar, error) {
	var all []exemplar
	now := time.Now()
	for _, h := range histograms {
		q := url.Values{
			"query": {fmt.Sprintf(`%s_bucket{service_name=%q}`, h, service)},
			"start": {strconv.FormatInt(now.Add(-since).Unix(), 10)},
			"end":   {strconv.FormatInt(now.Unix(), 10)},
		}
		var answer struct {
			Status string
			Data   []struct {
				SeriesLabels map[string]string `json:"seriesLabels"`
				Exemplars    []struct {
					Labels map[string]string
					Value  string
				}
			}
		}
		if err := getJSON(prometheus+"/api/v1/query_exemplars?"+q.Encode(), &answer); err != nil {
			return nil, err
		}
		for _, series := range answer.Data {
			for _, e := range series.Exemplars {
				v, _ := strconv.ParseFloat(e.Value, 64)
				all = append(all, exemplar{h, series.SeriesLabels, e.Labels["trace_id"], v})
			}
		}
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("Prometheus holds no exemplar of %s for service %q yet", strings.Join(histograms, ", "), service)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].value > all[j].value })
	return &all[0], nil
}

func main() {
	prometheus := flag.String("prometheus", "http://127.0.0.1:9090", "Prometheus' address")
	jaeger := flag.String("jaeger", "http://127.0.0.1:16686", "Jaeger's query address")
	service := flag.String("service", "tracedsvc", "the service.name to look at")
	since := flag.Duration("since", 15*time.Minute, "how far back to look for exemplars")
	flag.Parse()

	best, err := slowestExemplar(*prometheus, *service, *since)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backendsreport:", err)
		os.Exit(1)
	}
	by := "le"
	selector := fmt.Sprintf("service_name=%q", *service)
	if reason := best.series["go_wait_reason"]; reason != "" {
		by += ", go_wait_reason"
		selector += fmt.Sprintf(", go_wait_reason=%q", reason)
	}
	promql := fmt.Sprintf("histogram_quantile(0.99, sum by (%s) (rate(%s_bucket{%s}[1m])))", by, best.histogram, selector)
	fmt.Printf("slowest exemplar in Prometheus: %s{%s} = %.3f ms -> trace %s\n", best.histogram, selector, best.value*1e3, best.traceID)
	fmt.Printf("  PromQL (turn on Exemplars): %s\n", promql)
	fmt.Printf("  in Prometheus: %s/query?%s\n", *prometheus, url.Values{"g0.expr": {promql}, "g0.tab": {"graph"}, "g0.range_input": {"15m"}}.Encode())
	fmt.Printf("  the trace in Jaeger: %s/trace/%s\n", *jaeger, best.traceID)

	var trace struct {
		Data []struct {
			Spans []jaegerSpan `json:"spans"`
		}
	}
	// The trace store may still be taking the trace in.
	for tries := 0; ; tries++ {
		err = getJSON(*jaeger+"/api/traces/"+best.traceID, &trace)
		if err == nil && len(trace.Data) > 0 || tries == 20 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil || len(trace.Data) == 0 {
		fmt.Fprintf(os.Stderr, "backendsreport: Jaeger does not hold trace %s: %v\n", best.traceID, err)
		os.Exit(1)
	}
	spans := trace.Data[0].Spans
	children := map[string][]jaegerSpan{}
	for _, s := range spans {
		if _, stall := s.tag("go.runtime.stall.duration"); stall && len(s.References) > 0 {
			children[s.References[0].SpanID] = append(children[s.References[0].SpanID], s)
		}
	}
	for _, s := range spans {
		if _, stall := s.tag("go.runtime.stall.duration"); stall {
			continue
		}
		fmt.Printf("span %q in Jaeger: %.3f ms\n", s.OperationName, s.Duration/1e3)
		sort.Slice(s.Tags, func(i, j int) bool { return s.Tags[i].Key < s.Tags[j].Key })
		for _, t := range s.Tags {
			if !strings.HasPrefix(t.Key, "go.runtime.") {
				continue
			}
			if v, ok := t.Value.(float64); ok && strings.HasSuffix(t.Key, ".duration") {
				fmt.Printf("  %-42s %9.3f ms\n", t.Key, v*1e3)
			} else {
				fmt.Printf("  %-42s %v\n", t.Key, t.Value)
			}
		}
		kids := children[s.SpanID]
		sort.Slice(kids, func(i, j int) bool { return kids[i].StartTime < kids[j].StartTime })
		for _, k := range kids {
			fmt.Printf("  stall child %-40q %9.3f ms at +%.3f ms\n", k.OperationName, k.Duration/1e3, (k.StartTime-s.StartTime)/1e3)
		}
	}
}
