//! Whole-binary analysis on arbitrary bytes: ELF, .go.buildinfo, .gopclntab,
//! module data, DWARF and instruction decoding, as `gort inspect` runs them.
#![no_main]

use gort::{
    analysis::{self, Request},
    probe_table,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let request =
        Request { functions: probe_table::INSPECTED_FUNCTIONS, fields: probe_table::INSPECTED_FIELDS };
    let _ = analysis::analyse(data, &request);
});
