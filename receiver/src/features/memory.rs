//! The runtime's own statistics that no probe sees, read from its memory:
//! the semantic conventions' Go metrics for memory, the GC goal and cycles,
//! GOMAXPROCS and GOGC, named, united and typed as the conventions say.

use gort_common::ProbeId;
use gort_proto::metrics::Metric;

use super::{Feature, Report};
use crate::export::points::{Value, sum_metric, up_down};

pub struct Memory;

impl Feature for Memory {
    fn name(&self) -> &'static str {
        "the runtime's memory statistics"
    }

    fn probes(&self) -> &'static [ProbeId] {
        &[]
    }

    fn export(&self, r: &Report<'_>, out: &mut Vec<Metric>) {
        let Some(Some(s)) = r.runtime_stats else { return };
        let w = r.window;
        out.push(up_down(sum_metric(
            "go.memory.used",
            "Memory used by the Go runtime.",
            "By",
            w,
            vec![
                (vec![("go.memory.type", "stack")], Value::Int(s.memory_stacks)),
                (
                    vec![("go.memory.type", "other")],
                    Value::Int(s.memory_used.saturating_sub(s.memory_stacks)),
                ),
            ],
        )));
        // (name, description, unit, up-down counter, value); the conventions
        // export a limit only if one is set (math.MaxInt64 is "no limit").
        let limit = (s.memory_limit != i64::MAX).then_some((
            "go.memory.limit",
            "Go runtime memory limit configured by the user, if a limit exists.",
            "By",
            true,
            Value::Signed(s.memory_limit),
        ));
        let single = [
            (
                "go.memory.allocated",
                "Memory allocated to the heap by the application.",
                "By",
                false,
                Value::Int(s.allocated_bytes),
            ),
            (
                "go.memory.allocations",
                "Count of allocations to the heap by the application.",
                "{allocation}",
                false,
                Value::Int(s.allocations),
            ),
            (
                "go.memory.gc.goal",
                "Heap size target for the end of the GC cycle.",
                "By",
                true,
                Value::Int(s.heap_goal),
            ),
            (
                "go.memory.gc.cycles",
                "Completed GC cycles (the runtime's /gc/cycles/total:gc-cycles).",
                "{gc_cycle}",
                false,
                Value::Int(s.gc_cycles),
            ),
            (
                "go.processor.limit",
                "The number of OS threads that can execute user-level Go code simultaneously.",
                "{thread}",
                true,
                Value::Int(s.gomaxprocs),
            ),
            (
                "go.config.gogc",
                "Heap size target percentage configured by the user, otherwise 100.",
                "%",
                true,
                Value::Signed(s.gogc),
            ),
        ];
        for (name, description, unit, level, value) in limit.into_iter().chain(single) {
            let m = sum_metric(name, description, unit, w, vec![(vec![], value)]);
            out.push(if level { up_down(m) } else { m });
        }
    }
}
