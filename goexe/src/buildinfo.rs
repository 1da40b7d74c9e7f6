//! Parser for the `.go.buildinfo` section: the Go version and the module and
//! build settings the linker embeds (what `go version -m` prints).
//!
//! Only the inline-string layout (Go 1.18 and later, flag bit 2) is parsed;
//! gort supports Go 1.21+, so an older pointer-based header is reported as such.

use thiserror::Error;

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_INLINE_STRINGS: u8 = 0x2;
/// modinfo is wrapped in 16-byte sentinels so `go version -m` can find it.
const MODINFO_SENTINEL_LEN: usize = 16;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BuildInfoError {
    #[error("the .go.buildinfo section does not start with the Go build-info magic")]
    BadMagic,
    #[error("the .go.buildinfo section is truncated")]
    Truncated,
    #[error("the .go.buildinfo section uses the pre-Go-1.18 pointer layout; gort supports Go 1.21 and later")]
    PointerLayout,
}

/// One `dep` or `mod` line of the module info.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Module {
    pub path: String,
    pub version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sum: String,
}

/// What the Go linker recorded about how the binary was built.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BuildInfo {
    /// e.g. `go1.26.8`.
    pub go_version: String,
    /// Pointer size in bytes recorded in the header (4 or 8).
    pub ptr_size: u8,
    /// The main package's import path (`path` line).
    pub path: String,
    /// The main module (`mod` line).
    pub main: Module,
    /// Dependency modules (`dep` lines), in the order recorded.
    pub deps: Vec<Module>,
    /// `build` settings such as `-buildmode`, `CGO_ENABLED`, `GOARCH`, `GOOS`.
    pub settings: Vec<(String, String)>,
}

impl BuildInfo {
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parses the raw bytes of a `.go.buildinfo` section.
pub fn parse(section: &[u8]) -> Result<BuildInfo, BuildInfoError> {
    if section.len() < HEADER_LEN {
        return Err(if section.starts_with(&MAGIC[..section.len().min(MAGIC.len())]) {
            BuildInfoError::Truncated
        } else {
            BuildInfoError::BadMagic
        });
    }
    if &section[..MAGIC.len()] != MAGIC {
        return Err(BuildInfoError::BadMagic);
    }
    let ptr_size = section[14];
    let flags = section[15];
    if flags & FLAG_INLINE_STRINGS == 0 {
        return Err(BuildInfoError::PointerLayout);
    }
    let mut rest = &section[HEADER_LEN..];
    let go_version = read_varint_string(&mut rest)?;
    let modinfo = read_varint_string(&mut rest)?;
    let mut info = BuildInfo { go_version, ptr_size, ..BuildInfo::default() };
    let modinfo = strip_sentinels(&modinfo);
    for line in modinfo.lines() {
        parse_modinfo_line(&mut info, line);
    }
    Ok(info)
}

fn strip_sentinels(modinfo: &str) -> &str {
    if modinfo.len() >= 2 * MODINFO_SENTINEL_LEN
        && modinfo.is_char_boundary(MODINFO_SENTINEL_LEN)
        && modinfo.is_char_boundary(modinfo.len() - MODINFO_SENTINEL_LEN)
    {
        &modinfo[MODINFO_SENTINEL_LEN..modinfo.len() - MODINFO_SENTINEL_LEN]
    } else {
        modinfo
    }
}

fn parse_modinfo_line(info: &mut BuildInfo, line: &str) {
    let mut fields = line.split('\t');
    let kind = fields.next().unwrap_or_default();
    let mut module = || Module {
        path: fields.next().unwrap_or_default().to_owned(),
        version: fields.next().unwrap_or_default().to_owned(),
        sum: fields.next().unwrap_or_default().to_owned(),
    };
    match kind {
        "path" => info.path = line.strip_prefix("path\t").unwrap_or_default().to_owned(),
        "mod" => info.main = module(),
        "dep" => info.deps.push(module()),
        "build" => {
            let setting = line.strip_prefix("build\t").unwrap_or_default();
            let (k, v) = setting.split_once('=').unwrap_or((setting, ""));
            info.settings.push((k.to_owned(), v.trim_matches('"').to_owned()));
        }
        _ => {}
    }
}

/// Reads a uvarint length followed by that many bytes.
fn read_varint_string(buf: &mut &[u8]) -> Result<String, BuildInfoError> {
    let mut len: u64 = 0;
    let mut shift = 0u32;
    loop {
        let (&byte, tail) = buf.split_first().ok_or(BuildInfoError::Truncated)?;
        *buf = tail;
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return Err(BuildInfoError::Truncated);
        }
    }
    let len = usize::try_from(len).map_err(|_| BuildInfoError::Truncated)?;
    if buf.len() < len {
        return Err(BuildInfoError::Truncated);
    }
    let (s, tail) = buf.split_at(len);
    *buf = tail;
    Ok(String::from_utf8_lossy(s).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(version: &str, modinfo: &str) -> Vec<u8> {
        let mut s = MAGIC.to_vec();
        s.extend([8, FLAG_INLINE_STRINGS]);
        s.resize(HEADER_LEN, 0);
        for part in [version, modinfo] {
            let mut len = part.len();
            while len >= 0x80 {
                s.push(u8::try_from(len & 0x7f).unwrap() | 0x80);
                len >>= 7;
            }
            s.push(u8::try_from(len).unwrap());
            s.extend(part.as_bytes());
        }
        s
    }

    #[test]
    fn parses_version_and_modinfo() {
        let sentinel = "0123456789abcdef";
        let modinfo = format!(
            "{sentinel}path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/net\tv0.1.0\th1:abc=\nbuild\t-buildmode=pie\nbuild\tCGO_ENABLED=1\n{sentinel}"
        );
        let info = parse(&section("go1.22.12", &modinfo)).unwrap();
        assert_eq!(info.go_version, "go1.22.12");
        assert_eq!(info.path, "example.com/app");
        assert_eq!(info.main.path, "example.com/app");
        assert_eq!(info.deps[0].version, "v0.1.0");
        assert_eq!(info.deps[0].sum, "h1:abc=");
        assert_eq!(info.setting("-buildmode"), Some("pie"));
        assert_eq!(info.setting("CGO_ENABLED"), Some("1"));
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        assert_eq!(parse(b"hello"), Err(BuildInfoError::BadMagic));
        let good = section("go1.26.0", "");
        assert_eq!(parse(&good[..20]), Err(BuildInfoError::Truncated));
        assert_eq!(parse(&good[..HEADER_LEN + 3]), Err(BuildInfoError::Truncated));
        let mut old = good.clone();
        old[15] = 0;
        assert_eq!(parse(&old), Err(BuildInfoError::PointerLayout));
        let bare = section("go1.26.0", "path\nbuild\nmod\n");
        assert_eq!(parse(&bare).unwrap().path, "");
        let mut huge = good[..HEADER_LEN].to_vec();
        huge.extend([0xff; 12]);
        assert_eq!(parse(&huge), Err(BuildInfoError::Truncated));
    }
}
