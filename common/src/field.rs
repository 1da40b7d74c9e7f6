//! The one list of struct fields gort reads in a Go process, shared by the
//! probes and userspace. Each field's offset comes from the binary's DWARF or
//! from the generated table keyed by (module, version); userspace writes them
//! into `TargetConfig::offsets`, indexed by the field, and the probes read
//! them from there. Adding a field is one variant here (with its Go type and
//! member name) and a regenerated table.

/// The Go module whose release decides a field's offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Module {
    /// The Go runtime: keyed by the Go release.
    Runtime,
    /// The OpenTelemetry Go SDK: keyed by the `go.opentelemetry.io/otel/sdk`
    /// release in the binary's build info.
    OtelSdk,
}

impl Module {
    pub const ALL: [Self; 2] = [Self::Runtime, Self::OtelSdk];

    /// The name used in the offsets table and in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Runtime => "go",
            Self::OtelSdk => OTEL_SDK_MODULE,
        }
    }
}

/// The SDK module whose version keys the SDK's layouts.
pub const OTEL_SDK_MODULE: &str = "go.opentelemetry.io/otel/sdk";

/// Room for fields in `TargetConfig::offsets`.
pub const FIELD_SLOTS: usize = 64;

macro_rules! fields {
    ($($(#[$doc:meta])* $variant:ident = $module:ident $type:literal $member:literal,)*) => {
        /// A struct field gort reads. The discriminant indexes
        /// `TargetConfig::offsets`.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Field {
            $($(#[$doc])* $variant,)*
        }

        impl Field {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            pub const fn module(self) -> Module {
                match self { $(Self::$variant => Module::$module,)* }
            }

            /// The Go type's name as DWARF spells it (`runtime.g`).
            pub const fn type_name(self) -> &'static str {
                match self { $(Self::$variant => $type,)* }
            }

            /// The member's name in that type (`goid`).
            pub const fn member(self) -> &'static str {
                match self { $(Self::$variant => $member,)* }
            }
        }
    };
}

fields! {
    /// The goroutine id.
    GGoid = Runtime "runtime.g" "goid",
    /// The goroutine's state (`_Grunnable`, ...).
    GAtomicstatus = Runtime "runtime.g" "atomicstatus",
    GM = Runtime "runtime.g" "m",
    /// Why a waiting goroutine waits (a uint8 `waitReason`).
    GWaitreason = Runtime "runtime.g" "waitreason",
    /// Where a goroutine started: tells the runtime's goroutines from the application's.
    GStartpc = Runtime "runtime.g" "startpc",
    GGopc = Runtime "runtime.g" "gopc",
    /// The creator's goroutine id (Go 1.21+): new goroutines inherit its span.
    GParentGoid = Runtime "runtime.g" "parentGoid",
    GWaitsince = Runtime "runtime.g" "waitsince",
    GSched = Runtime "runtime.g" "sched",
    GLabels = Runtime "runtime.g" "labels",
    GobufPc = Runtime "runtime.gobuf" "pc",
    GobufSp = Runtime "runtime.gobuf" "sp",
    /// The saved frame pointer: where an outside stack walk starts (amd64).
    GobufBp = Runtime "runtime.gobuf" "bp",
    MCurg = Runtime "runtime.m" "curg",
    MP = Runtime "runtime.m" "p",
    MProcid = Runtime "runtime.m" "procid",
    PId = Runtime "runtime.p" "id",
    PStatus = Runtime "runtime.p" "status",
    ModuledataFtab = Runtime "runtime.moduledata" "ftab",
    ModuledataMinpc = Runtime "runtime.moduledata" "minpc",
    ModuledataText = Runtime "runtime.moduledata" "text",
    ModuledataGofunc = Runtime "runtime.moduledata" "gofunc",
    // The runtime's own statistics, read from the target's memory (userspace
    // only): what `runtime/metrics` computes its values from.
    /// The scheduling-latency `timeHistogram` (`/sched/latencies:seconds`).
    SchedtTimeToRun = Runtime "runtime.schedt" "timeToRun",
    /// GC stop-the-world pauses (Go 1.22+; `/gc/pauses:seconds`).
    SchedtStwTotalTimeGC = Runtime "runtime.schedt" "stwTotalTimeGC",
    /// The sharded heap statistics (`consistentHeapStats`).
    MstatsHeapStats = Runtime "runtime.mstats" "heapStats",
    MstatsStacksSys = Runtime "runtime.mstats" "stacks_sys",
    MstatsMspanSys = Runtime "runtime.mstats" "mspan_sys",
    MstatsMcacheSys = Runtime "runtime.mstats" "mcache_sys",
    MstatsBuckhashSys = Runtime "runtime.mstats" "buckhash_sys",
    MstatsGcMiscSys = Runtime "runtime.mstats" "gcMiscSys",
    MstatsOtherSys = Runtime "runtime.mstats" "other_sys",
    /// Completed GC cycles.
    MstatsNumgc = Runtime "runtime.mstats" "numgc",
    /// GC pauses up to Go 1.21 (`/gc/pauses:seconds`).
    MstatsGcPauseDist = Runtime "runtime.mstats" "gcPauseDist",
    /// Follows `stats [3]heapStatsDelta`: a third of it is the delta's size.
    ConsistentHeapStatsGen = Runtime "runtime.consistentHeapStats" "gen",
    HeapStatsDeltaCommitted = Runtime "runtime.heapStatsDelta" "committed",
    HeapStatsDeltaReleased = Runtime "runtime.heapStatsDelta" "released",
    HeapStatsDeltaInStacks = Runtime "runtime.heapStatsDelta" "inStacks",
    HeapStatsDeltaLargeAlloc = Runtime "runtime.heapStatsDelta" "largeAlloc",
    HeapStatsDeltaLargeAllocCount = Runtime "runtime.heapStatsDelta" "largeAllocCount",
    HeapStatsDeltaSmallAllocCount = Runtime "runtime.heapStatsDelta" "smallAllocCount",
    /// Follows `smallAllocCount`: gives the number of size classes.
    HeapStatsDeltaLargeFree = Runtime "runtime.heapStatsDelta" "largeFree",
    GcControllerGcPercent = Runtime "runtime.gcControllerState" "gcPercent",
    GcControllerMemoryLimit = Runtime "runtime.gcControllerState" "memoryLimit",
    GcControllerGcPercentHeapGoal = Runtime "runtime.gcControllerState" "gcPercentHeapGoal",
    GcControllerSweepDistMinTrigger = Runtime "runtime.gcControllerState" "sweepDistMinTrigger",
    GcControllerTriggered = Runtime "runtime.gcControllerState" "triggered",
    GcControllerHeapMarked = Runtime "runtime.gcControllerState" "heapMarked",
    GcControllerMappedReady = Runtime "runtime.gcControllerState" "mappedReady",
    GcControllerHeapFree = Runtime "runtime.gcControllerState" "heapFree",
    GcControllerTotalAlloc = Runtime "runtime.gcControllerState" "totalAlloc",
    GcControllerTotalFree = Runtime "runtime.gcControllerState" "totalFree",
    /// Odd while the P writes its heap-statistics delta: a torn read.
    PStatsSeq = Runtime "runtime.p" "statsSeq",
    /// Where the SDK span keeps its `trace.SpanContext` (trace id: 16 bytes
    /// at +0, span id: 8 bytes at +16, the layout of
    /// go.opentelemetry.io/otel/trace since v1.0).
    SpanContext = OtelSdk "go.opentelemetry.io/otel/sdk/trace.recordingSpan" "spanContext",
}

const _: () = assert!(Field::ALL.len() <= FIELD_SLOTS);

impl Field {
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl core::fmt::Display for Field {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.type_name(), self.member())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discriminants_are_positions_in_all() {
        for (i, f) in Field::ALL.iter().enumerate() {
            assert_eq!(f.index(), i, "{f:?}");
        }
    }
}
