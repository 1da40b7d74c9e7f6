//! The wait profile as pprof, the format Go developers open with `go tool
//! pprof`: the censuses of a span of time, each goroutine sample weighted
//! by the time its census stands for, summed by stack, state, wait reason
//! and process. Two values per sample: `goroutines` (samples) and `wait`
//! (nanoseconds, the default), an estimate of the time spent parked or
//! runnable at that stack. A sample of a goroutine serving a span carries
//! the span's `trace_id` and `span_id` (hex, as in OTLP/JSON) as labels,
//! so `go tool pprof -tagfocus trace_id=...` shows one slow trace's waits.

use std::{collections::HashMap, io::Write as _, sync::Arc, time::Duration};

use gort_proto::pprof::{Function, Label, Line, Location, Profile, Sample, ValueType};
use prost::Message as _;

use crate::telemetry::{
    census,
    wait_profile::{self, CensusSamples, SampleKey, Summed},
};

/// Interns strings into a profile's string table (index 0 is "").
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Self::default();
        s.get("");
        s
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// The profile of `censuses`, which began at `start_unix_ns` and lasted
/// `duration`.
pub fn wait_profile(censuses: &[CensusSamples], start_unix_ns: i64, duration: Duration) -> Profile {
    let mut strings = Strings::new();
    let mut functions: HashMap<(String, String), u64> = HashMap::new();
    let mut locations: HashMap<Arc<census::Location>, u64> = HashMap::new();
    let mut profile = Profile {
        sample_type: vec![
            ValueType { r#type: strings.get("goroutines"), unit: strings.get("count") },
            ValueType { r#type: strings.get("wait"), unit: strings.get("nanoseconds") },
        ],
        time_nanos: start_unix_ns,
        duration_nanos: i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX),
        ..Default::default()
    };
    profile.default_sample_type = strings.get("wait");
    profile.comment.push(strings.get(
        "gort wait profile: goroutines sampled at each census, each weighted by the time since the census before (an estimate)",
    ));
    profile.period_type = Some(ValueType { r#type: strings.get("wait"), unit: strings.get("nanoseconds") });
    profile.period = wait_profile::mean_period_ns(censuses);
    for Summed { pid, key, goroutines, wait_ns } in wait_profile::summed(censuses) {
        let SampleKey { stack, state, category, span } = key;
        let mut location_id = Vec::with_capacity(stack.len());
        for frame in stack.iter() {
            let next = locations.len() as u64 + 1;
            let id = *locations.entry(frame.clone()).or_insert_with(|| {
                let key = (frame.function.clone(), frame.file.clone());
                let next_fn = functions.len() as u64 + 1;
                let function_id = *functions.entry(key).or_insert_with(|| {
                    let name = strings.get(&frame.function);
                    profile.function.push(Function {
                        id: next_fn,
                        name,
                        system_name: name,
                        filename: strings.get(&frame.file),
                    });
                    next_fn
                });
                profile.location.push(Location {
                    id: next,
                    address: 0,
                    line: vec![Line { function_id, line: i64::from(frame.line) }],
                });
                next
            });
            location_id.push(id);
        }
        let mut label = vec![Label { key: strings.get("state"), str: strings.get(state), num: 0 }];
        if !category.is_empty() {
            label.push(Label { key: strings.get("wait_reason"), str: strings.get(category), num: 0 });
        }
        label.push(Label { key: strings.get("pid"), str: 0, num: i64::from(pid) });
        if let Some(span) = span {
            label.push(Label {
                key: strings.get("trace_id"),
                str: strings.get(&hex(&span.trace_id)),
                num: 0,
            });
            label.push(Label { key: strings.get("span_id"), str: strings.get(&hex(&span.span_id)), num: 0 });
        }
        profile.sample.push(Sample { location_id, value: vec![goroutines, wait_ns], label });
    }
    profile.string_table = strings.table;
    profile
}

/// Lower-case hex, as OTLP/JSON writes trace and span ids.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `profile` gzipped, as `net/http/pprof` serves profiles.
pub fn gzipped(profile: &Profile) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(&profile.encode_to_vec());
    gz.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        bpf::ActiveSpanIds,
        telemetry::{census::Stack, wait_profile::StackCounts},
    };

    fn frame(function: &str, line: u32) -> Arc<census::Location> {
        Arc::new(census::Location { function: function.into(), file: format!("{function}.go"), line })
    }

    #[test]
    fn samples_are_weighted_by_the_time_their_census_stands_for_and_frames_shared() {
        let gopark = frame("runtime.gopark", 10);
        let a: Stack = Arc::new([gopark.clone(), frame("main.a", 5)]);
        let b: Stack = Arc::new([gopark.clone(), frame("main.b", 7)]);
        let key =
            |stack: &Stack, state, category, span| SampleKey { stack: stack.clone(), state, category, span };
        let span = ActiveSpanIds { trace_id: [0xab; 16], span_id: [0, 1, 2, 3, 4, 5, 6, 0xff] };
        let census = |stands_for_ms: u64, a_n: u64| {
            let mut stacks = StackCounts::new();
            stacks.insert(key(&a, "waiting", "chan_receive", None), a_n);
            stacks.insert(key(&b, "runnable", "", None), 1);
            stacks.insert(key(&b, "runnable", "", Some(span)), 1);
            CensusSamples {
                pid: 9,
                at: Duration::ZERO,
                stands_for: Duration::from_millis(stands_for_ms),
                stacks,
            }
        };
        let p = wait_profile(&[census(500, 30), census(250, 30)], 1, Duration::from_secs(1));
        let s = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(s(p.sample_type[0].r#type), "goroutines");
        assert_eq!(s(p.default_sample_type), "wait");
        assert_eq!(p.sample.len(), 3, "the stack served a span apart from the same stack outside it");
        // 30 goroutines for 0.5 s and for 0.25 s.
        assert_eq!(p.sample[0].value, vec![60, 30 * 750_000_000]);
        assert_eq!(p.sample[1].value, vec![2, 750_000_000]);
        assert_eq!(p.sample[2].value, vec![2, 750_000_000]);
        assert_eq!(p.sample[1].label.len(), 2, "outside a span: no span labels");
        let span_labels: Vec<(&str, &str)> =
            p.sample[2].label[1..].iter().map(|l| (s(l.key), s(l.str))).collect();
        assert_eq!(
            span_labels,
            [("pid", ""), ("trace_id", "abababababababababababababababab"), ("span_id", "00010203040506ff")]
        );
        // runtime.gopark is one location of both stacks.
        assert_eq!(p.location.len(), 3);
        assert_eq!(p.sample[0].location_id[0], p.sample[1].location_id[0]);
        let labels: Vec<(&str, &str)> = p.sample[0].label.iter().map(|l| (s(l.key), s(l.str))).collect();
        assert_eq!(labels, [("state", "waiting"), ("wait_reason", "chan_receive"), ("pid", "")]);
        assert_eq!(p.sample[0].label[2].num, 9);
        assert_eq!(p.period, 375_000_000);
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzipped(&p)[..]), &mut bytes).unwrap();
        assert_eq!(Profile::decode(&bytes[..]).unwrap(), p);
    }
}
