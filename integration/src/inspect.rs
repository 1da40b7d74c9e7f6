//! A typed view of `gort inspect --json`: what gort resolved from a binary.

use std::{collections::BTreeMap, path::Path, process::Command};

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Inspect {
    /// `amd64` or `arm64`.
    pub arch: String,
    pub build: Build,
    pub has_symbols: bool,
    pub has_dwarf: bool,
    pub functions: BTreeMap<String, Function>,
    /// Every direct call of each function gort lists the calls of.
    pub calls: BTreeMap<String, Vec<CallSite>>,
    pub missing_functions: Vec<String>,
    pub inlined_only: BTreeMap<String, Vec<String>>,
    pub unprobeable: BTreeMap<String, String>,
    /// By `type.member`.
    pub fields: BTreeMap<String, FieldOffset>,
    pub missing_fields: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Build {
    pub go_version: String,
    pub path: String,
    pub main: Module,
    pub deps: Vec<Module>,
    /// (key, value) of each `build` setting.
    pub settings: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
pub struct Module {
    pub path: String,
    pub version: String,
}

#[derive(Debug, Deserialize)]
pub struct Function {
    /// `symtab` or `pclntab`.
    pub source: String,
    pub address: u64,
    pub size: u64,
    pub file_offset: u64,
    pub site: Site,
    pub returns: Vec<u64>,
    pub inlined_into: Option<Vec<String>>,
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
pub struct Site {
    pub offset: u64,
    /// `emulated` or `single_stepped`.
    pub kind: String,
    pub instruction: String,
    pub args_intact: bool,
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
pub struct CallSite {
    pub caller: String,
    pub address: u64,
    pub offset: u64,
    pub file_offset: u64,
    /// `emulated` or `single_stepped`.
    pub kind: String,
    /// RAX, RBX, RCX (amd64) when set from a constant just before the call.
    pub constant_args: Vec<Option<u64>>,
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
pub struct FieldOffset {
    pub offset: u64,
    /// `dwarf` or `table`.
    pub source: String,
}

/// Runs `gort inspect --json` on `binary`.
pub fn inspect(binary: &Path) -> Inspect {
    let out = Command::new(crate::gort_binary()).args(["inspect", "--json"]).arg(binary).output().unwrap();
    assert!(out.status.success(), "inspect {}: {}", binary.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("inspect {}: {e}", binary.display()))
}
