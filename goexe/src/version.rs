//! Go release numbers as binaries spell them.

/// A Go release number, comparable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl GoVersion {
    /// Parses `go1.22.12`, `go1.21rc2`, `go1.26.8 X:nocoverageredesign`; a
    /// `devel` build parses as the release it names, if any.
    pub fn parse(text: &str) -> Option<Self> {
        let start = text.find("go1.")? + 2;
        let digits = |s: &str| -> (u32, usize) {
            let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            (s[..end].parse().unwrap_or(0), end)
        };
        let rest = &text[start..];
        let (major, n) = digits(rest);
        let rest = rest.get(n + 1..)?;
        let (minor, n) = digits(rest);
        let patch = match rest[n..].strip_prefix('.') {
            Some(p) => digits(p).0,
            None => 0,
        };
        Some(Self { major, minor, patch })
    }
}

impl std::fmt::Display for GoVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "go{}.{}.{}", self.major, self.minor, self.patch)
    }
}
