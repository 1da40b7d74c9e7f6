//! The wait profile as OTLP profiles, the specification's development
//! signal (`v1development`): what `export::pprof` serves as pprof, for one
//! process and one report interval, in one export request with its own
//! dictionary. One profile per request, of sample type `wait`
//! (nanoseconds): each sample is a stack, its attributes
//! `go.goroutine.state` and `go.wait.reason` (as gort's goroutine metrics
//! name them), and, for a goroutine serving a span, a link to that span,
//! the signal's own way to join a sample to a trace. Its value is an
//! estimate: goroutines sampled at each census, each weighted by the time
//! since the census before.
//!
//! Every dictionary table starts with its zero entry, as the specification
//! asks, so that index 0 means "none".

use std::{collections::HashMap, sync::Arc, time::Duration};

use gort_proto::{
    common::{AnyValue, any_value},
    profiles::{
        Function, KeyValueAndUnit, Line, Link, Location, Mapping, Profile, ProfilesDictionary,
        ResourceProfiles, Sample, ScopeProfiles, Stack, ValueType,
    },
    profiles_service::ExportProfilesServiceRequest,
};

use super::ResourceFacts;
use crate::telemetry::{
    census,
    wait_profile::{self, CensusSamples, Summed},
};

/// A sample's state attribute (as on `go.goroutine.count`).
pub const STATE_KEY: &str = "go.goroutine.state";
/// A sample's wait-reason category attribute (as on `go.goroutine.count`).
pub const WAIT_REASON_KEY: &str = "go.wait.reason";

/// The tables of one request's dictionary, each interned.
struct Dictionary {
    table: ProfilesDictionary,
    strings: HashMap<String, i32>,
    functions: HashMap<(String, String), i32>,
    locations: HashMap<Arc<census::Location>, i32>,
    stacks: HashMap<Vec<i32>, i32>,
    attributes: HashMap<(&'static str, &'static str), i32>,
    links: HashMap<([u8; 16], [u8; 8]), i32>,
}

/// The index the next entry of a table gets.
fn next(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

impl Dictionary {
    fn new() -> Self {
        let table = ProfilesDictionary {
            mapping_table: vec![Mapping::default()],
            location_table: vec![Location::default()],
            function_table: vec![Function::default()],
            link_table: vec![Link::default()],
            string_table: vec![String::new()],
            attribute_table: vec![KeyValueAndUnit::default()],
            stack_table: vec![Stack::default()],
        };
        Self {
            table,
            strings: HashMap::from([(String::new(), 0)]),
            functions: HashMap::new(),
            locations: HashMap::new(),
            stacks: HashMap::new(),
            attributes: HashMap::new(),
            links: HashMap::new(),
        }
    }

    fn string(&mut self, s: &str) -> i32 {
        if let Some(i) = self.strings.get(s) {
            return *i;
        }
        let i = next(self.table.string_table.len());
        self.table.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    fn function(&mut self, name: &str, file: &str) -> i32 {
        if let Some(i) = self.functions.get(&(name.to_owned(), file.to_owned())) {
            return *i;
        }
        let (name_strindex, filename_strindex) = (self.string(name), self.string(file));
        let i = next(self.table.function_table.len());
        self.table.function_table.push(Function {
            name_strindex,
            system_name_strindex: name_strindex,
            filename_strindex,
            start_line: 0,
        });
        self.functions.insert((name.to_owned(), file.to_owned()), i);
        i
    }

    fn location(&mut self, frame: &Arc<census::Location>) -> i32 {
        if let Some(i) = self.locations.get(frame) {
            return *i;
        }
        let function_index = self.function(&frame.function, &frame.file);
        let i = next(self.table.location_table.len());
        self.table.location_table.push(Location {
            lines: vec![Line { function_index, line: i64::from(frame.line), column: 0 }],
            ..Default::default()
        });
        self.locations.insert(frame.clone(), i);
        i
    }

    /// The stack of `frames`, innermost first (as pprof).
    fn stack(&mut self, frames: &[Arc<census::Location>]) -> i32 {
        let location_indices: Vec<i32> = frames.iter().map(|f| self.location(f)).collect();
        if let Some(i) = self.stacks.get(&location_indices) {
            return *i;
        }
        let i = next(self.table.stack_table.len());
        self.table.stack_table.push(Stack { location_indices: location_indices.clone() });
        self.stacks.insert(location_indices, i);
        i
    }

    fn attribute(&mut self, key: &'static str, value: &'static str) -> i32 {
        if let Some(i) = self.attributes.get(&(key, value)) {
            return *i;
        }
        let key_strindex = self.string(key);
        let i = next(self.table.attribute_table.len());
        self.table.attribute_table.push(KeyValueAndUnit {
            key_strindex,
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
            unit_strindex: 0,
        });
        self.attributes.insert((key, value), i);
        i
    }

    fn link(&mut self, trace_id: [u8; 16], span_id: [u8; 8]) -> i32 {
        if let Some(i) = self.links.get(&(trace_id, span_id)) {
            return *i;
        }
        let i = next(self.table.link_table.len());
        self.table.link_table.push(Link { trace_id: trace_id.to_vec(), span_id: span_id.to_vec() });
        self.links.insert((trace_id, span_id), i);
        i
    }
}

/// When a profile begins and how long it covers, and its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileWindow {
    pub start_unix_ns: u64,
    pub duration: Duration,
    /// 16 bytes, not all zero (the specification's "invalid" id).
    pub profile_id: [u8; 16],
}

/// The wait profile of `resource`'s process over the censuses of
/// `censuses` that are its own (those of other processes are left out), or
/// None when it has no sample.
pub fn wait_profile_request(
    resource: &ResourceFacts,
    censuses: &[CensusSamples],
    window: ProfileWindow,
) -> Option<ExportProfilesServiceRequest> {
    let own = || censuses.iter().filter(|c| c.pid == resource.pid);
    let summed = wait_profile::summed(own());
    if summed.is_empty() {
        return None;
    }
    let mut dict = Dictionary::new();
    let wait = ValueType { type_strindex: dict.string("wait"), unit_strindex: dict.string("nanoseconds") };
    let mut samples = Vec::with_capacity(summed.len());
    for Summed { key, wait_ns, .. } in summed {
        let mut attribute_indices = vec![dict.attribute(STATE_KEY, key.state)];
        if !key.category.is_empty() {
            attribute_indices.push(dict.attribute(WAIT_REASON_KEY, key.category));
        }
        let link_index = key.span.map_or(0, |s| dict.link(s.trace_id, s.span_id));
        samples.push(Sample {
            stack_index: dict.stack(&key.stack),
            attribute_indices,
            link_index,
            values: vec![wait_ns],
            timestamps_unix_nano: Vec::new(),
        });
    }
    let profile = Profile {
        sample_type: Some(wait),
        samples,
        time_unix_nano: window.start_unix_ns,
        duration_nano: u64::try_from(window.duration.as_nanos()).unwrap_or(u64::MAX),
        period_type: Some(wait),
        period: wait_profile::mean_period_ns(own()),
        profile_id: window.profile_id.to_vec(),
        ..Default::default()
    };
    Some(ExportProfilesServiceRequest {
        resource_profiles: vec![ResourceProfiles {
            resource: Some(resource.resource()),
            scope_profiles: vec![ScopeProfiles {
                scope: Some(super::scope()),
                profiles: vec![profile],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
        dictionary: Some(dict.table),
    })
}

#[cfg(test)]
mod tests {
    use gort_proto::kv_int;
    use prost::Message as _;

    use super::*;
    use crate::{
        bpf::ActiveSpanIds,
        telemetry::{
            census::Stack as Frames,
            wait_profile::{SampleKey, StackCounts},
        },
    };

    fn frame(function: &str, line: u32) -> Arc<census::Location> {
        Arc::new(census::Location { function: function.into(), file: format!("/src/{function}.go"), line })
    }

    fn facts(pid: u32) -> ResourceFacts {
        ResourceFacts {
            service_name: "svc".into(),
            service_attributes: Vec::new(),
            pid,
            executable_path: "/bin/svc".into(),
            runtime_version: "go1.27.4".into(),
        }
    }

    const WINDOW: ProfileWindow =
        ProfileWindow { start_unix_ns: 1_000, duration: Duration::from_secs(1), profile_id: [7; 16] };

    #[test]
    fn samples_become_stacks_attributes_and_links_in_one_dictionary() {
        let gopark = frame("runtime.gopark", 10);
        let a: Frames = Arc::new([gopark.clone(), frame("main.a", 5)]);
        let b: Frames = Arc::new([gopark, frame("main.b", 7)]);
        let span = ActiveSpanIds { trace_id: [0xab; 16], span_id: [1; 8] };
        let census = |pid, stands_for_ms| {
            let mut stacks = StackCounts::new();
            let key = |stack: &Frames, state, category, span| SampleKey {
                stack: stack.clone(),
                state,
                category,
                span,
            };
            stacks.insert(key(&a, "waiting", "mutex", Some(span)), 2);
            stacks.insert(key(&b, "runnable", "", None), 1);
            CensusSamples {
                pid,
                at: Duration::ZERO,
                stands_for: Duration::from_millis(stands_for_ms),
                stacks,
            }
        };
        let request =
            wait_profile_request(&facts(9), &[census(9, 500), census(9, 250), census(8, 1000)], WINDOW)
                .unwrap();
        let dict = request.dictionary.as_ref().unwrap();
        let s = |i: i32| dict.string_table[i as usize].as_str();
        let rp = &request.resource_profiles[0];
        assert!(rp.resource.as_ref().unwrap().attributes.contains(&kv_int("process.pid", 9)));
        let p = &rp.scope_profiles[0].profiles[0];
        let st = p.sample_type.unwrap();
        assert_eq!((s(st.type_strindex), s(st.unit_strindex)), ("wait", "nanoseconds"));
        assert_eq!((p.time_unix_nano, p.duration_nano, p.period), (1_000, 1_000_000_000, 375_000_000));
        assert_eq!(p.samples.len(), 2, "pid 8's census is another process's");
        // 2 goroutines for 0.5 s and for 0.25 s, the heaviest first.
        let mutex = &p.samples[0];
        assert_eq!(mutex.values, vec![1_500_000_000]);
        let stack = &dict.stack_table[mutex.stack_index as usize].location_indices;
        let names: Vec<&str> = stack
            .iter()
            .map(|l| {
                let line = &dict.location_table[*l as usize].lines[0];
                s(dict.function_table[line.function_index as usize].name_strindex)
            })
            .collect();
        assert_eq!(names, ["runtime.gopark", "main.a"], "innermost first");
        let attrs: Vec<(&str, String)> = mutex
            .attribute_indices
            .iter()
            .map(|i| {
                let kv = &dict.attribute_table[*i as usize];
                let Some(any_value::Value::StringValue(v)) = kv.value.as_ref().and_then(|v| v.value.clone())
                else {
                    panic!("a string value")
                };
                (s(kv.key_strindex), v)
            })
            .collect();
        assert_eq!(attrs, [(STATE_KEY, "waiting".into()), (WAIT_REASON_KEY, "mutex".into())]);
        let link = &dict.link_table[mutex.link_index as usize];
        assert_eq!((link.trace_id.as_slice(), link.span_id.as_slice()), (&[0xab; 16][..], &[1; 8][..]));
        let runnable = &p.samples[1];
        assert_eq!((runnable.link_index, runnable.attribute_indices.len()), (0, 1), "no span, no reason");
        // The two stacks share runtime.gopark's location; every table starts
        // with its zero entry.
        assert_eq!(dict.location_table.len(), 4);
        assert_eq!(dict.stack_table.len(), 3);
        assert_eq!((dict.string_table[0].as_str(), dict.link_table[0].trace_id.len()), ("", 0));
        assert_eq!(
            ExportProfilesServiceRequest::decode(&request.encode_to_vec()[..]).unwrap(),
            request,
            "round trip"
        );
    }

    #[test]
    fn a_process_without_samples_has_no_profile() {
        assert_eq!(wait_profile_request(&facts(9), &[], WINDOW), None);
        let empty = CensusSamples {
            pid: 9,
            at: Duration::ZERO,
            stands_for: Duration::from_secs(1),
            stacks: StackCounts::new(),
        };
        assert_eq!(wait_profile_request(&facts(9), &[empty], WINDOW), None);
    }
}
