//! The .go.buildinfo section parser and the instruction decoders on their
//! own, where short inputs reach every branch quickly.
#![no_main]

use gort_goexe::{Arch, buildinfo, sites};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = buildinfo::parse(data);
    let _ = sites::analyse(Arch::Amd64, 0x40_1000, data);
    let _ = sites::analyse(Arch::Arm64, 0x40_1000, data);
});
