//! Differential: the walk that checks and counts a request gort forwards as
//! its bytes against prost's decoding, which it replaces. Both must accept
//! and refuse the same inputs, count the same items, and find the same
//! resources. Input: [signal, request...].
#![no_main]

use gort::pipeline::{Payload, raw::decode_request, walk::walk};
use gort_proto::resource::Resource;
use gort_fuzz::signal;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let [s, body @ ..] = data else { return };
    // Profiles are not walked.
    let (signal, _, _) = signal(*s % 3);
    let walked = walk(signal, body);
    let decoded = decode_request(signal, body);
    match (walked, decoded) {
        (Ok(w), Some(p)) => {
            assert_eq!(w.items, p.items(), "items counted");
            let walked: Vec<Resource> = w
                .resources
                .iter()
                .map(|fields| {
                    let mut resource = Resource::default();
                    for r in fields {
                        resource.merge(&body[r.clone()]).expect("a walked resource decodes");
                    }
                    resource
                })
                .collect();
            assert_eq!(walked, resources(p), "the resources");
        }
        (Err(_), None) => {}
        (w, p) => panic!("walk says {w:?}, prost decodes: {}", p.is_some()),
    }
});

/// The resource of each resource-level message of a decoded request (an
/// empty one where it has none).
fn resources(decoded: Payload) -> Vec<Resource> {
    let resources: Vec<Option<Resource>> = match decoded {
        Payload::Traces(r) => r.resource_spans.into_iter().map(|r| r.resource).collect(),
        Payload::Metrics(r) => r.resource_metrics.into_iter().map(|r| r.resource).collect(),
        Payload::Logs(r) => r.resource_logs.into_iter().map(|r| r.resource).collect(),
        _ => Vec::new(),
    };
    resources.into_iter().map(Option::unwrap_or_default).collect()
}
