//! Differential: the walk that checks and counts a request gort forwards as
//! its bytes against prost's decoding, which it replaces. Both must accept
//! and refuse the same inputs, count the same items, and name the same
//! first resource. Input: [signal, request...].
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
            let mut resource = Resource::default();
            for r in &w.first_resource {
                resource.merge(&body[r.clone()]).expect("a walked resource decodes");
            }
            assert_eq!(resource, first_resource(p), "the first resource");
        }
        (Err(_), None) => {}
        (w, p) => panic!("walk says {w:?}, prost decodes: {}", p.is_some()),
    }
});

/// The first resource of a decoded request (none: an empty one).
fn first_resource(decoded: Payload) -> Resource {
    let resource = match decoded {
        Payload::Traces(r) => r.resource_spans.into_iter().next().and_then(|r| r.resource),
        Payload::Metrics(r) => r.resource_metrics.into_iter().next().and_then(|r| r.resource),
        Payload::Logs(r) => r.resource_logs.into_iter().next().and_then(|r| r.resource),
        _ => None,
    };
    resource.unwrap_or_default()
}
