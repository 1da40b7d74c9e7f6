//! Whole-binary analysis on arbitrary bytes: ELF, .go.buildinfo, .gopclntab,
//! module data, DWARF and instruction decoding, as `gort inspect` runs them.
#![no_main]

use gort_goexe::{
    self as analysis, Request,
    functions::{INSPECTED_CALLERS, INSPECTED_FIELDS, INSPECTED_FUNCTIONS},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let request =
        Request { functions: INSPECTED_FUNCTIONS, fields: INSPECTED_FIELDS, callers: INSPECTED_CALLERS };
    let _ = analysis::analyse(data, &request);
});
