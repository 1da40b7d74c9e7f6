//! Reading the ring buffers: notable events, and span records handed to
//! the pipeline's linkage stage.

use std::{collections::VecDeque, time::Duration};

use gort_common::{CounterId, Event, STALL_FRAMES, event_kind};

use super::*;
use crate::{
    bpf::{Probes, SpanRecord},
    dump::WalkEnd,
    linkage::{self, Account},
    pipeline::{self},
};

/// One notable event as reported.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NotableEvent {
    pub kind: &'static str,
    /// 0 for process-wide events (pauses).
    pub goid: u64,
    /// CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    pub duration_ns: u64,
}

impl NotableEvent {
    pub(super) fn from_event(e: &Event) -> Self {
        let kind = match e.kind {
            event_kind::SCHEDULE_STALL => "schedule_stall",
            event_kind::GC_PAUSE => "gc_pause",
            _ => "unknown",
        };
        Self { kind, goid: e.goid, start_ns: e.start_ns, duration_ns: e.end_ns.saturating_sub(e.start_ns) }
    }
}

/// Notable events of one target: totals and the most recent ones.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct NotableSummary {
    pub stall_threshold_ns: u64,
    pub schedule_stalls: u64,
    pub gc_pauses: u64,
    /// Events the ring buffer had no room for (counted in the kernel).
    pub lost: u64,
    /// Records that could not be decoded.
    pub undecodable: u64,
    pub recent: VecDeque<NotableEvent>,
}

impl Session {
    pub(super) fn linker(&self) -> Option<&pipeline::Linkage> {
        self.linkage.as_ref()?;
        self.forward.as_ref()?.linkage.as_ref()
    }

    /// Hands this target's span records (and GC pauses) to the pipeline's join.
    pub(super) fn drain_spans(&mut self, probes: &mut Probes, pauses: &[(u64, u64)]) -> Result<(), RunError> {
        let Some(summary) = self.linkage.as_mut() else { return Ok(()) };
        let (records, undecodable) = probes.drain_span_records(DRAIN_MAX);
        summary.undecodable += undecodable;
        summary.records_lost =
            probes.counter(CounterId::SpanEventsLost)?.saturating_sub(self.span_lost_baseline);
        let Some(linkage) = self.forward.as_ref().and_then(|f| f.linkage.as_ref()) else { return Ok(()) };
        let pid = self.process.pid;
        let offset = crate::bpf::realtime_offset_ns();
        let names = self.wait_names;
        let namer = |n: u32| {
            let name = gort_goexe::wait_reasons::name(names, n);
            let category = gort_goexe::wait_reasons::category(&name);
            (name, category)
        };
        let mut probed = pipeline::linkage::Probed {
            pauses: pauses
                .iter()
                .map(|&(s, e)| (linkage::mono_to_unix(s, offset), linkage::mono_to_unix(e, offset)))
                .collect(),
            ..Default::default()
        };
        for record in records {
            match record {
                SpanRecord::End(end) if end.tgid == pid => {
                    summary.span_ends += 1;
                    let ids = (end.trace_id, end.span_id.to_le_bytes());
                    probed.accounts.push((pid, ids, Account::from_end(&end, offset, &namer)));
                }
                SpanRecord::Stall(stall) if stall.tgid == pid => {
                    summary.stalls += 1;
                    match linkage::stall_from_record(&stall, offset, &namer) {
                        Some(s) => probed.stalls.push((pid, stall.span_id.to_le_bytes(), s)),
                        None => summary.undecodable += 1,
                    }
                }
                _ => {}
            }
        }
        // Where each stall waited, named in one go.
        if let Some(names) = &self.stall_names {
            let mut names = names.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            names.name(probed.stalls.iter().map(|(_, _, s)| &s.pcs[..]));
            for (_, _, s) in &mut probed.stalls {
                // The probe stops at its frame bound or where frame
                // pointers stop rising, which is also the stack's bottom.
                let end = if s.pcs.len() >= STALL_FRAMES { WalkEnd::TooDeep } else { WalkEnd::OutOfOrder };
                let (site, _) = names.site(&s.pcs, end);
                s.site = site.map(|at| linkage::StallSite::new(at, &names.stack(&s.pcs)));
            }
        }
        summary.counts = linkage.feed(probed);
        Ok(())
    }

    /// How often the ring buffers are read.
    pub(super) fn drain_interval(&self) -> Duration {
        if self.linkage.is_some() { LINKED_DRAIN_INTERVAL } else { DRAIN_INTERVAL }
    }

    /// Takes this target's notable events out of the ring buffer.
    pub(super) fn drain(&mut self, probes: &mut Probes) -> Result<(), RunError> {
        let (events, undecodable) = probes.drain_events(DRAIN_MAX);
        let pauses: Vec<(u64, u64)> = events
            .iter()
            .filter(|e| e.tgid == self.process.pid && e.kind == event_kind::GC_PAUSE)
            .map(|e| (e.start_ns, e.end_ns))
            .collect();
        self.drain_spans(probes, &pauses)?;
        let n = &mut self.notable;
        n.undecodable += undecodable;
        for e in events.iter().filter(|e| e.tgid == self.process.pid) {
            match e.kind {
                event_kind::SCHEDULE_STALL => n.schedule_stalls += 1,
                event_kind::GC_PAUSE => n.gc_pauses += 1,
                _ => n.undecodable += 1,
            }
            if n.recent.len() == RECENT_EVENTS {
                n.recent.pop_front();
            }
            n.recent.push_back(NotableEvent::from_event(e));
        }
        n.lost = probes.counter(CounterId::EventsLost)?.saturating_sub(self.lost_baseline);
        Ok(())
    }
}
