//! The README's configuration table is checked against the structs the file
//! is read into: a key missing from either side fails here.

use std::collections::BTreeSet;

use serde::{Deserialize, de};

use super::raw::*;

/// A deserializer that only records the field names a struct asks for.
struct FieldNames(Vec<&'static str>);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stop")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for &mut FieldNames {
    type Error = Stop;

    fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0.extend(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

fn fields<T: for<'de> Deserialize<'de>>() -> Vec<&'static str> {
    let mut names = FieldNames(Vec::new());
    let _ = T::deserialize(&mut names);
    names.0
}

/// Every key the file takes, as `section.field` (`receiver.tls.cert_file`).
fn keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut add = |prefix: &str, names: Vec<&'static str>| {
        for n in names {
            keys.insert(if prefix.is_empty() { n.to_owned() } else { format!("{prefix}.{n}") });
        }
    };
    let sections = fields::<RawConfig>();
    for section in &sections {
        let names = match *section {
            "target" => fields::<RawTarget>(),
            "run" => fields::<RawRun>(),
            "events" => fields::<RawEvents>(),
            "leaks" => fields::<RawLeaks>(),
            "sampling" => fields::<RawSampling>(),
            "deep" => fields::<RawDeep>(),
            "receiver" => fields::<RawReceiver>(),
            "exporter" => fields::<RawExporter>(),
            "telemetry" => fields::<RawTelemetry>(),
            "linkage" => fields::<RawLinkage>(),
            "otlp" => {
                add("", vec!["otlp"]);
                continue;
            }
            other => panic!("section {other} is not listed here: add it"),
        };
        for name in names {
            if name == "tls" {
                add(&format!("{section}.tls"), fields::<RawTls>());
            } else if name == "storage" {
                add(&format!("{section}.storage"), fields::<RawStorage>());
            } else {
                add(section, vec![name]);
            }
        }
    }
    keys
}

#[test]
fn the_readme_table_lists_every_key_and_only_those() {
    let readme = include_str!("../../../README.md");
    let start = readme.find("<!-- config-table -->").expect("README has no <!-- config-table --> marker");
    let table = &readme[start..];
    let table = &table[..table.find("\n\n").unwrap_or(table.len())];
    let documented: BTreeSet<String> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(key, _)| key.to_owned()))
        .collect();
    let keys = keys();
    assert!(keys.contains("linkage.child_span_threshold") && keys.contains("exporter.tls.reload_interval"));
    // serde lists a field's old names (aliases) too: the row of the new
    // name says "old name `...`".
    let is_alias =
        |key: &String| key.rsplit('.').next().is_some_and(|f| table.contains(&format!("old name `{f}`")));
    let missing: Vec<_> = keys.difference(&documented).filter(|k| !is_alias(k)).collect();
    let stale: Vec<_> = documented.difference(&keys).collect();
    assert!(missing.is_empty() && stale.is_empty(), "README lacks {missing:?}; README has unknown {stale:?}");
}
