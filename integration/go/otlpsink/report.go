package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// report prints, from a sink file, the exemplar with the largest value on
// gort's histograms, the span it points to with gort's go.runtime.*
// attributes, and that span's stall children as a little waterfall: what the
// demo ends with.
func report(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	spans := map[string]item{}
	children := map[string][]item{}
	type ex struct {
		metric string
		reason string
		e      exemplar
	}
	var exemplars []ex
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var it item
		if json.Unmarshal(sc.Bytes(), &it) != nil {
			continue
		}
		switch {
		case it.Kind == "span" && it.Scope == "gort":
			children[it.Parent] = append(children[it.Parent], it)
		case it.Kind == "span":
			spans[it.ID] = it
		case it.Kind == "point":
			for _, e := range it.Exemplars {
				reason, _ := it.Values["go.wait.reason"].(string)
				exemplars = append(exemplars, ex{it.Metric, reason, e})
			}
		}
	}
	if len(exemplars) == 0 {
		return fmt.Errorf("%s holds no exemplars (did gort see the service's spans?)", path)
	}
	// The slowest exemplar whose span arrived (with its stalls).
	sort.Slice(exemplars, func(i, j int) bool { return exemplars[i].e.Value > exemplars[j].e.Value })
	var best *ex
	for i := range exemplars {
		if _, ok := spans[exemplars[i].e.ID]; ok {
			best = &exemplars[i]
			break
		}
	}
	if best == nil {
		return fmt.Errorf("no exemplar points at a span in %s", path)
	}
	s := spans[best.e.ID]
	label := best.metric
	if best.reason != "" {
		label += "{go.wait.reason=" + best.reason + "}"
	}
	fmt.Printf("slowest exemplar: %s = %.3f ms -> trace %s span %s\n", label, best.e.Value*1e3, strings.Split(s.ID, "/")[0], strings.Split(s.ID, "/")[1])
	dur := float64(s.End-s.Start) / 1e6
	fmt.Printf("span %q: %.3f ms\n", s.Name, dur)
	var keys []string
	for k := range s.Values {
		if strings.HasPrefix(k, "go.runtime.") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := s.Values[k].(type) {
		case float64:
			if strings.HasSuffix(k, ".duration") {
				fmt.Printf("  %-42s %9.3f ms\n", k, v*1e3)
			} else {
				fmt.Printf("  %-42s %9.0f\n", k, v)
			}
		default:
			fmt.Printf("  %-42s %v\n", k, v)
		}
	}
	kids := children[s.ID]
	sort.Slice(kids, func(i, j int) bool { return kids[i].Start < kids[j].Start })
	fmt.Printf("waterfall (0 = span start, each # = %.1f ms):\n", dur/40)
	bar := func(start, end uint64) string {
		from := int(40 * float64(start-s.Start) / float64(s.End-s.Start))
		to := int(40 * float64(end-s.Start) / float64(s.End-s.Start))
		if to <= from {
			to = from + 1
		}
		return strings.Repeat(" ", from) + strings.Repeat("#", to-from)
	}
	fmt.Printf("  %-40s |%-41s| %8.3f ms\n", s.Name, bar(s.Start, s.End), dur)
	for _, c := range kids {
		fmt.Printf("  %-40s |%-41s| %8.3f ms at +%.3f ms\n", "  "+c.Name, bar(c.Start, c.End), float64(c.End-c.Start)/1e6, float64(c.Start-s.Start)/1e6)
	}
	return nil
}
