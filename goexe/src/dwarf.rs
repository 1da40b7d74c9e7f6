//! Struct field offsets from a Go binary's DWARF (gimli).
//!
//! Go emits one `DW_TAG_structure_type` per runtime type, named with its
//! package path (`runtime.g`), whose `DW_TAG_member` children carry
//! `DW_AT_data_member_location` as a plain constant. We walk the DIE tree once
//! and stop as soon as every requested field is found.

use std::{borrow::Cow, collections::BTreeMap};

use gimli::{AttributeValue, EndianSlice, LittleEndian, constants};
use gort_common::Field;
use object::{Object, ObjectSection, ReadRef};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DwarfError {
    #[error("the binary has no DWARF (.debug_info is absent; built with -ldflags=-w or stripped)")]
    Absent,
    #[error("cannot decompress DWARF section {section}: {source}")]
    Decompress { section: String, source: object::Error },
    #[error("corrupt DWARF: {0}")]
    Corrupt(#[from] gimli::Error),
}

/// Returns whether the file carries a `.debug_info` (possibly compressed).
pub fn has_dwarf<'data, R: ReadRef<'data>>(file: &object::File<'data, R>) -> bool {
    file.section_by_name(".debug_info").is_some() || file.section_by_name(".zdebug_info").is_some()
}

/// Sections a walk over type DIEs reads. Line tables, location and range
/// lists and frame info are the bulk of Go's DWARF and are left unloaded
/// (and undecompressed).
const NEEDED: &[gimli::SectionId] = &[
    gimli::SectionId::DebugInfo,
    gimli::SectionId::DebugAbbrev,
    gimli::SectionId::DebugStr,
    gimli::SectionId::DebugStrOffsets,
    gimli::SectionId::DebugLineStr,
];

fn load_section<'data, R: ReadRef<'data>>(
    file: &object::File<'data, R>,
    id: gimli::SectionId,
) -> Result<Cow<'data, [u8]>, DwarfError> {
    if !NEEDED.contains(&id) {
        return Ok(Cow::Borrowed(&[]));
    }
    let name = id.name();
    let section = file.section_by_name(name).or_else(|| {
        name.strip_prefix(".debug_").and_then(|rest| file.section_by_name(&format!(".zdebug_{rest}")))
    });
    match section {
        Some(section) => section
            .uncompressed_data()
            .map_err(|source| DwarfError::Decompress { section: name.to_owned(), source }),
        None => Ok(Cow::Borrowed(&[])),
    }
}

/// Finds the byte offset of each requested field. Fields not present in the
/// DWARF are simply absent from the result; the caller decides which are
/// required.
pub fn field_offsets<'data, R: ReadRef<'data>>(
    file: &object::File<'data, R>,
    wanted: &[Field],
) -> Result<BTreeMap<Field, u64>, DwarfError> {
    if !has_dwarf(file) {
        return Err(DwarfError::Absent);
    }
    let sections = gimli::DwarfSections::load(|id| load_section(file, id))?;
    let dwarf = sections.borrow(|s| EndianSlice::new(s, LittleEndian));

    let mut found = BTreeMap::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        // Entries straight from the header: `Dwarf::unit` would also parse
        // the unit's line program, which needs the unloaded .debug_line.
        let abbrevs = dwarf.abbreviations(&header)?;
        let mut cursor = header.entries(&abbrevs);
        // The struct whose members we are collecting, and its depth.
        let mut current: Option<(&str, isize)> = None;
        while let Some(entry) = cursor.next_dfs()? {
            let depth = entry.depth();
            if let Some((_, struct_depth)) = current
                && depth <= struct_depth
            {
                current = None;
            }
            match entry.tag() {
                constants::DW_TAG_structure_type => {
                    let Some(name) = entry_name(&dwarf, entry)? else { continue };
                    current = wanted
                        .iter()
                        .find(|f| f.type_name().as_bytes() == name)
                        .map(|f| (f.type_name(), depth));
                }
                constants::DW_TAG_member => {
                    let Some((type_name, struct_depth)) = current else { continue };
                    if depth != struct_depth + 1 {
                        continue;
                    }
                    let Some(name) = entry_name(&dwarf, entry)? else { continue };
                    let Some(field) =
                        wanted.iter().find(|f| f.type_name() == type_name && f.member().as_bytes() == name)
                    else {
                        continue;
                    };
                    if let Some(offset) =
                        entry.attr_value(constants::DW_AT_data_member_location).and_then(|v| v.udata_value())
                    {
                        found.insert(*field, offset);
                    }
                }
                _ => {}
            }
        }
        if found.len() == wanted.len() {
            break;
        }
    }
    Ok(found)
}

/// A DIE's name: Go writes names inline (DW_FORM_string); a .debug_str
/// reference is followed too. Other forms need unit context we do not load
/// and count as unnamed.
fn entry_name<'a>(
    dwarf: &gimli::Dwarf<EndianSlice<'a, LittleEndian>>,
    entry: &gimli::DebuggingInformationEntry<EndianSlice<'a, LittleEndian>>,
) -> Result<Option<&'a [u8]>, DwarfError> {
    match entry.attr_value(constants::DW_AT_name) {
        Some(AttributeValue::String(s)) => Ok(Some(s.slice())),
        Some(AttributeValue::DebugStrRef(offset)) => Ok(Some(dwarf.debug_str.get_str(offset)?.slice())),
        _ => Ok(None),
    }
}
