//! Identifiers as the contract defines them (SPEC §3): parse, don't validate.

use std::fmt;

use crate::error::{ApiError, quoted};

fn invalid(field: &str, value: &str, expected: &str) -> ApiError {
    ApiError::invalid(format!(
        "{field} {} is not valid: expected {expected}",
        quoted(value)
    ))
}

/// An artifact kind (`appimage`, `nsis`, `tar.gz`, …), as [`parse_kind`] accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind(pub String);

/// Deserializes a path or query parameter through its parser. The refusal is the parser's
/// text without a field name: the extractor puts the parameter's name in front, so the
/// answer reads as it always has (`product "X" is not valid: expected …`).
macro_rules! parsed_from_str {
    ($($t:ty => $parse:expr,)*) => {
        $(
            impl<'de> serde::Deserialize<'de> for $t {
                fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                    let parse: fn(&str) -> Result<$t, ApiError> = $parse;
                    parse(&s).map_err(|e| serde::de::Error::custom(e.detail.trim_start()))
                }
            }
        )*
    };
}

parsed_from_str! {
    Slug => |s| Slug::parse("", s),
    Version => |s| Version::parse_field("", s),
    Os => |s| Os::parse_field("", s),
    Arch => |s| Arch::parse_field("", s),
    Kind => |s| parse_kind_field("", s).map(Kind),
}

/// A product or pack slug: `[a-z0-9][a-z0-9-]{0,62}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    /// Parses a slug, naming `field` in the error.
    pub fn parse(field: &str, s: &str) -> Result<Self, ApiError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
        if ok {
            Ok(Slug(s.to_owned()))
        } else {
            Err(invalid(
                field,
                s,
                "lower-case letters, digits and '-', starting with a letter or digit, at most 63 characters",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest version accepted, without its leading `v`.
pub const MAX_VERSION_LEN: usize = 128;

/// A SemVer 2.0 version, stored without a leading `v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(semver::Version);

impl Version {
    /// Parses `1.2.3`, `v1.2.3`, `1.2.3-beta.1+build.5`: at most [`MAX_VERSION_LEN`]
    /// characters (SemVer sets no bound; storage keys and indexes need one).
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Self::parse_field("version", s)
    }

    /// [`Version::parse`], naming `field` (`expectedVersion`, `currentVersion`) in the error.
    pub fn parse_field(field: &str, s: &str) -> Result<Self, ApiError> {
        let trimmed = s.strip_prefix('v').unwrap_or(s);
        if trimmed.len() > MAX_VERSION_LEN {
            return Err(invalid(
                field,
                s,
                "a SemVer 2.0 version of at most 128 characters",
            ));
        }
        semver::Version::parse(trimmed).map(Version).map_err(|_| {
            invalid(
                field,
                s,
                "a SemVer 2.0 version such as 1.4.0 or 2.0.0-beta.1",
            )
        })
    }
    pub fn semver(&self) -> &semver::Version {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `{os}-{arch}` as a static string: what the request hot paths label a platform with,
/// without formatting one per request.
pub fn platform_str(os: Os, arch: Arch) -> &'static str {
    match (os, arch) {
        (Os::Linux, Arch::X86_64) => "linux-x86_64",
        (Os::Linux, Arch::Aarch64) => "linux-aarch64",
        (Os::Linux, Arch::I686) => "linux-i686",
        (Os::Linux, Arch::Armv7) => "linux-armv7",
        (Os::Linux, Arch::Riscv64) => "linux-riscv64",
        (Os::Windows, Arch::X86_64) => "windows-x86_64",
        (Os::Windows, Arch::Aarch64) => "windows-aarch64",
        (Os::Windows, Arch::I686) => "windows-i686",
        (Os::Windows, Arch::Armv7) => "windows-armv7",
        (Os::Windows, Arch::Riscv64) => "windows-riscv64",
        (Os::Darwin, Arch::X86_64) => "darwin-x86_64",
        (Os::Darwin, Arch::Aarch64) => "darwin-aarch64",
        (Os::Darwin, Arch::I686) => "darwin-i686",
        (Os::Darwin, Arch::Armv7) => "darwin-armv7",
        (Os::Darwin, Arch::Riscv64) => "darwin-riscv64",
    }
}

/// Operating systems artifacts target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Os {
    Linux,
    Windows,
    /// macOS.
    Darwin,
}

impl Os {
    /// Parses an OS name; `macos` is accepted for `darwin`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Self::parse_field("os", s)
    }

    /// [`Os::parse`], naming `field` (the updater's `target`) in the error.
    pub fn parse_field(field: &str, s: &str) -> Result<Self, ApiError> {
        match s {
            "linux" => Ok(Os::Linux),
            "windows" => Ok(Os::Windows),
            "darwin" | "macos" => Ok(Os::Darwin),
            _ => Err(invalid(field, s, "linux, windows or darwin (macos)")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Os::Linux => "linux",
            Os::Windows => "windows",
            Os::Darwin => "darwin",
        }
    }
}

/// CPU architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    X86_64,
    Aarch64,
    I686,
    Armv7,
    Riscv64,
}

impl Arch {
    /// Parses an architecture; `amd64` and `arm64` are accepted.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Self::parse_field("arch", s)
    }

    /// [`Arch::parse`], naming `field` in the error.
    pub fn parse_field(field: &str, s: &str) -> Result<Self, ApiError> {
        match s {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            "i686" => Ok(Arch::I686),
            "armv7" => Ok(Arch::Armv7),
            "riscv64" => Ok(Arch::Riscv64),
            _ => Err(invalid(
                field,
                s,
                "x86_64 (amd64), aarch64 (arm64), i686, armv7 or riscv64",
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::I686 => "i686",
            Arch::Armv7 => "armv7",
            Arch::Riscv64 => "riscv64",
        }
    }
}

/// An (os, arch) pair, written `linux-x86_64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: Os,
    pub arch: Arch,
}

impl Platform {
    /// Parses `os-arch` (aliases accepted: `macos-arm64` → `darwin-aarch64`).
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let (os, arch) = s
            .split_once('-')
            .ok_or_else(|| invalid("platform", s, "os-arch, e.g. linux-x86_64"))?;
        Ok(Platform {
            os: Os::parse(os)?,
            arch: Arch::parse(arch)?,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.os.as_str(), self.arch.as_str())
    }
}

/// An artifact kind: `[a-z0-9][a-z0-9.-]{0,31}` (`appimage`, `nsis`, `tar.gz`, …).
pub fn parse_kind(s: &str) -> Result<String, ApiError> {
    parse_kind_field("kind", s)
}

/// [`parse_kind`], naming `field` (the updater's `bundleType`) in the error.
pub fn parse_kind_field(field: &str, s: &str) -> Result<String, ApiError> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(invalid(
            field,
            s,
            "lower-case letters, digits, '.' and '-', at most 32 characters (e.g. appimage, nsis, tar.gz)",
        ))
    }
}

/// A release channel of a distribution product.
pub const CHANNELS: [&str; 3] = ["stable", "beta", "dev"];

/// Parses a product channel name (404 for names that are not channels).
pub fn parse_channel(s: &str) -> Result<&'static str, ApiError> {
    CHANNELS.iter().find(|c| **c == s).copied().ok_or_else(|| {
        ApiError::not_found(format!(
            "no channel {}: channels are stable, beta and dev",
            quoted(s)
        ))
    })
}

/// A file name as stored and offered for download: no paths, no control characters.
pub fn parse_filename(s: &str) -> Result<String, ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('.')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'+'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(invalid(
            "filename",
            s,
            "letters, digits, '.', '-', '_' and '+', not starting with '.', at most 200 characters",
        ))
    }
}

/// A lower-case hex sha256 (upper case accepted and lowered).
pub fn parse_sha256(s: &str) -> Result<String, ApiError> {
    let lower = s.to_ascii_lowercase();
    if lower.len() == 64 && lower.bytes().all(|c| c.is_ascii_hexdigit()) {
        Ok(lower)
    } else {
        Err(invalid("sha256", s, "64 hexadecimal digits"))
    }
}

/// A MIME type such as `application/octet-stream`.
pub fn parse_content_type(s: &str) -> Result<String, ApiError> {
    let ok = s.len() <= 100
        && s.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && s.bytes().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'/' | b'.' | b'-' | b'+' | b'_')
                })
        });
    if ok {
        Ok(s.to_owned())
    } else {
        Err(invalid(
            "contentType",
            s,
            "a MIME type such as application/octet-stream",
        ))
    }
}

/// Characters never accepted in names people read: control characters and the Unicode
/// bidirectional controls, which make text display in another order than it is stored
/// ("Trojan Source": `U+202E` turns `exe.txt` into what reads as `txt.exe`).
pub fn is_hidden_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// A display name (tokens, products, packs): trimmed, 1 to 100 characters, none of them a
/// control or bidirectional control character.
pub fn parse_name(field: &str, s: &str) -> Result<String, ApiError> {
    let name = s.trim();
    let count = name.chars().count();
    if count == 0 || count > 100 {
        return Err(ApiError::invalid(format!(
            "{field} must be 1 to 100 characters"
        )));
    }
    if let Some(c) = name.chars().find(|c| is_hidden_control(*c)) {
        return Err(ApiError::invalid(format!(
            "{field} contains the control character U+{:04X}; names are plain text",
            c as u32
        )));
    }
    Ok(name.to_owned())
}

/// Release notes: at most 100000 bytes of text; line breaks and tabs are the only control
/// characters (PostgreSQL cannot store NUL, and nothing needs the others).
pub fn parse_notes(s: &str) -> Result<&str, ApiError> {
    if s.len() > 100_000 {
        return Err(ApiError::invalid("notes are limited to 100000 bytes"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ApiError::invalid(format!(
            "notes contain the control character U+{:04X}; only line breaks and tabs are accepted",
            c as u32
        )));
    }
    Ok(s)
}

/// A declared artifact size in bytes: at least 1 (JSON numbers over `i64::MAX` never get
/// this far: they fail to deserialize).
pub fn parse_size(field: &str, size: i64) -> Result<u64, ApiError> {
    u64::try_from(size).ok().filter(|s| *s >= 1).ok_or_else(|| {
        ApiError::invalid(format!(
            "{field} must be the artifact's size in bytes (at least 1), not {size}"
        ))
    })
}

/// A storage key as presign returned it: at most 1024 bytes, no control characters. Only
/// looked up, never trusted: the upload recorded under it decides what it is.
pub fn parse_storage_key(field: &str, s: &str) -> Result<String, ApiError> {
    if s.is_empty() || s.len() > 1024 || s.chars().any(is_hidden_control) {
        return Err(invalid(field, s, "the key presign returned"));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_platform_labels_are_os_dash_arch() {
        for os in [Os::Linux, Os::Windows, Os::Darwin] {
            for arch in [
                Arch::X86_64,
                Arch::Aarch64,
                Arch::I686,
                Arch::Armv7,
                Arch::Riscv64,
            ] {
                assert_eq!(
                    platform_str(os, arch),
                    format!("{}-{}", os.as_str(), arch.as_str())
                );
            }
        }
    }

    #[test]
    fn slugs_follow_the_contract() {
        assert!(Slug::parse("product", "launcher").is_ok());
        assert!(Slug::parse("product", "0-runner").is_ok());
        for bad in ["", "-x", "Launcher", "a_b", &"a".repeat(64)] {
            assert!(Slug::parse("product", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_drop_a_leading_v_and_keep_prerelease_and_build() {
        assert_eq!(Version::parse("v1.2.3").unwrap().to_string(), "1.2.3");
        assert_eq!(
            Version::parse("1.2.0-beta.1+build.5").unwrap().to_string(),
            "1.2.0-beta.1+build.5"
        );
        assert!(Version::parse("1.2").is_err());
        assert!(Version::parse("latest").is_err());
    }

    #[test]
    fn os_and_arch_aliases_are_normalised() {
        assert_eq!(Os::parse("macos").unwrap(), Os::Darwin);
        assert_eq!(Arch::parse("amd64").unwrap(), Arch::X86_64);
        assert_eq!(Arch::parse("arm64").unwrap(), Arch::Aarch64);
        assert_eq!(
            Platform::parse("macos-arm64").unwrap().to_string(),
            "darwin-aarch64"
        );
        assert!(Os::parse("freebsd").is_err());
    }

    #[test]
    fn filenames_cannot_escape_their_folder() {
        assert!(parse_filename("Atlas_1.2.0_amd64.AppImage").is_ok());
        for bad in ["../x", "a/b", ".hidden", "a b", ""] {
            assert!(parse_filename(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kinds_and_hashes_follow_the_contract() {
        assert!(parse_kind("tar.gz").is_ok());
        assert!(parse_kind("AppImage").is_err());
        assert_eq!(parse_sha256(&"AB".repeat(32)).unwrap(), "ab".repeat(32));
        assert!(parse_sha256("xyz").is_err());
    }
}

/// Properties of the identifier parsers: every one total on hostile input, accepting exactly
/// its grammar, with canonical forms that re-parse to themselves.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::{hostile_string, refusal, semver_string};

    fn slug_grammar(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars().count() <= 63
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }

    fn kind_grammar(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars().count() <= 32
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn slugs_accept_exactly_their_grammar(s in prop_oneof![hostile_string(80), "[a-z0-9][a-z0-9-]{0,70}"]) {
            match Slug::parse("product", &s) {
                Ok(slug) => {
                    prop_assert!(slug_grammar(&s), "{s:?} accepted");
                    prop_assert_eq!(slug.as_str(), s.as_str());
                    prop_assert_eq!(Slug::parse("product", slug.as_str()).unwrap(), slug);
                }
                Err(e) => {
                    prop_assert!(!slug_grammar(&s), "{s:?} refused");
                    prop_assert_eq!(refusal(&e), (400, "invalid_input"));
                    prop_assert!(e.detail.starts_with("product "), "{}", e.detail);
                }
            }
        }

        #[test]
        fn canonical_versions_round_trip(v in semver_string(), prefix in prop::bool::ANY) {
            prop_assume!(v.len() <= MAX_VERSION_LEN);
            let input = if prefix { format!("v{v}") } else { v.clone() };
            let parsed = Version::parse(&input).unwrap();
            prop_assert_eq!(parsed.to_string(), v.clone());
            prop_assert_eq!(Version::parse(&parsed.to_string()).unwrap(), parsed);
        }

        #[test]
        fn percent_encoded_versions_decode_to_the_same_version(v in semver_string()) {
            prop_assume!(v.len() <= MAX_VERSION_LEN);
            // As the router decodes a path segment before the extractor parses it.
            for set in [percent_encoding::NON_ALPHANUMERIC, percent_encoding::CONTROLS] {
                let segment = percent_encoding::utf8_percent_encode(&v, set).to_string();
                let decoded = percent_encoding::percent_decode_str(&segment).decode_utf8().unwrap();
                prop_assert_eq!(Version::parse(&decoded).unwrap().to_string(), v.clone());
            }
        }

        #[test]
        fn any_version_string_parses_or_is_refused_naming_the_field(s in prop_oneof![
            hostile_string(40),
            semver_string().prop_map(|v| format!("v{v}")),
            "[0-9v.+-]{0,20}",
        ]) {
            match Version::parse(&s) {
                Ok(v) => {
                    // Canonical: no `v`, stable when parsed again, within the length bound.
                    let canonical = v.to_string();
                    prop_assert!(!canonical.starts_with('v'));
                    prop_assert!(canonical.len() <= MAX_VERSION_LEN);
                    prop_assert_eq!(Version::parse(&canonical).unwrap().to_string(), canonical.clone());
                    prop_assert_eq!(canonical.as_str(), s.strip_prefix('v').unwrap_or(&s));
                }
                Err(e) => {
                    prop_assert_eq!(refusal(&e), (400, "invalid_input"));
                    prop_assert!(e.detail.starts_with("version "), "{}", e.detail);
                }
            }
        }

        #[test]
        fn numeric_identifiers_with_leading_zeros_are_refused(
            n in 0u64..1000, at in 0usize..4, v in semver_string()
        ) {
            let zeroed = format!("0{n}");
            let mut parts: Vec<String> = v.splitn(3, '.').map(str::to_owned).collect();
            let bad = match at {
                3 => format!("1.2.3-{zeroed}"),
                i => {
                    let rest = parts[2].find(['-', '+']).map(|p| parts[2][p..].to_owned()).unwrap_or_default();
                    parts[2] = parts[2].split(['-', '+']).next().unwrap().to_owned();
                    parts[i] = zeroed;
                    format!("{}.{}.{}{rest}", parts[0], parts[1], parts[2])
                }
            };
            prop_assert!(Version::parse(&bad).is_err(), "{bad:?} accepted");
        }

        #[test]
        fn overlong_versions_are_refused(extra in 1usize..400) {
            let long = format!("1.0.0-{}", "a".repeat(MAX_VERSION_LEN - 6 + extra));
            let e = Version::parse(&long).unwrap_err();
            prop_assert_eq!(refusal(&e), (400, "invalid_input"));
            let at_limit = format!("1.0.0-{}", "a".repeat(MAX_VERSION_LEN - 6));
            prop_assert!(Version::parse(&at_limit).is_ok());
        }

        #[test]
        fn os_arch_and_platforms_accept_their_names_and_aliases_only(s in prop_oneof![
            hostile_string(12),
            prop::sample::select(vec!["linux", "windows", "darwin", "macos", "x86_64", "amd64",
                "aarch64", "arm64", "i686", "armv7", "riscv64", "Linux", "x86-64", "linux ", ""])
                .prop_map(String::from),
        ]) {
            let os_names = ["linux", "windows", "darwin", "macos"];
            let arch_names = ["x86_64", "amd64", "aarch64", "arm64", "i686", "armv7", "riscv64"];
            match Os::parse(&s) {
                Ok(os) => {
                    prop_assert!(os_names.contains(&s.as_str()));
                    prop_assert_eq!(Os::parse(os.as_str()).unwrap(), os);
                }
                Err(e) => {
                    prop_assert!(!os_names.contains(&s.as_str()));
                    prop_assert_eq!(refusal(&e), (400, "invalid_input"));
                }
            }
            match Arch::parse(&s) {
                Ok(arch) => {
                    prop_assert!(arch_names.contains(&s.as_str()));
                    prop_assert_eq!(Arch::parse(arch.as_str()).unwrap(), arch);
                }
                Err(e) => {
                    prop_assert!(!arch_names.contains(&s.as_str()));
                    prop_assert_eq!(refusal(&e), (400, "invalid_input"));
                }
            }
            if let Ok(p) = Platform::parse(&s) {
                prop_assert_eq!(Platform::parse(&p.to_string()).unwrap(), p);
            }
        }

        #[test]
        fn every_platform_prints_and_parses_back(os in 0usize..4, arch in 0usize..7) {
            let os = ["linux", "windows", "darwin", "macos"][os];
            let arch = ["x86_64", "amd64", "aarch64", "arm64", "i686", "armv7", "riscv64"][arch];
            let p = Platform::parse(&format!("{os}-{arch}")).unwrap();
            let canonical = p.to_string();
            prop_assert_eq!(Platform::parse(&canonical).unwrap().to_string(), canonical);
        }

        #[test]
        fn kinds_accept_exactly_their_grammar(s in prop_oneof![hostile_string(40), "[a-z0-9][a-z0-9.-]{0,34}"]) {
            match parse_kind(&s) {
                Ok(k) => {
                    prop_assert!(kind_grammar(&s));
                    prop_assert_eq!(parse_kind(&k).unwrap(), k);
                }
                Err(e) => {
                    prop_assert!(!kind_grammar(&s));
                    prop_assert_eq!(refusal(&e), (400, "invalid_input"));
                    prop_assert!(e.detail.starts_with("kind "));
                }
            }
        }

        #[test]
        fn accepted_filenames_cannot_name_another_folder_or_hide_characters(
            s in prop_oneof![hostile_string(60), "[A-Za-z0-9._+-]{1,210}"]
        ) {
            match parse_filename(&s) {
                Ok(f) => {
                    prop_assert_eq!(&f, &s);
                    prop_assert!(!f.is_empty() && f.len() <= 200);
                    prop_assert!(!f.starts_with('.'));
                    prop_assert!(f.is_ascii());
                    prop_assert!(!f.contains(['/', '\\', '\0', ' ', '%', '"', '\'', ';', '$', '`']));
                    prop_assert!(!f.chars().any(|c| c.is_control()));
                    prop_assert_eq!(parse_filename(&f).unwrap(), f);
                }
                Err(e) => {
                    prop_assert_eq!(refusal(&e), (400, "invalid_input"));
                    prop_assert!(e.detail.starts_with("filename "));
                }
            }
        }

        #[test]
        fn filenames_with_separators_controls_or_bidi_are_refused(
            base in "[A-Za-z0-9_]{1,20}",
            bad in prop::sample::select(vec!["/", "\\", "\0", "\n", "\r", "\u{202E}", "\u{2066}", "..", "\u{7F}", "%2F"]),
            at_start in prop::bool::ANY,
        ) {
            let s = if at_start { format!("{bad}{base}") } else { format!("{base}{bad}x") };
            // `a..b` stays inside its folder (no separator can follow): only a leading dot is refused.
            if bad == ".." && !at_start {
                prop_assert!(parse_filename(&s).is_ok());
            } else {
                prop_assert!(parse_filename(&s).is_err(), "{s:?}");
            }
        }

        #[test]
        fn sha256_is_64_hex_digits_lowered(bytes in prop::array::uniform32(any::<u8>()), upper in prop::bool::ANY) {
            let hex = hex::encode(bytes);
            let input = if upper { hex.to_ascii_uppercase() } else { hex.clone() };
            prop_assert_eq!(parse_sha256(&input).unwrap(), hex.clone());
            prop_assert_eq!(parse_sha256(&hex).unwrap(), hex.clone());
            // One digit more or less, or one that is not hex: refused.
            prop_assert!(parse_sha256(&hex[1..]).is_err());
            let longer = format!("{hex}0");
            prop_assert!(parse_sha256(&longer).is_err());
            let not_hex = format!("g{}", &hex[1..]);
            prop_assert_eq!(refusal(&parse_sha256(&not_hex).unwrap_err()), (400, "invalid_input"));
        }

        #[test]
        fn any_sha256_input_is_refused_unless_hex(s in prop_oneof![hostile_string(70), "[0-9a-fA-F]{60,68}"]) {
            match parse_sha256(&s) {
                Ok(h) => {
                    prop_assert!(h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
                    prop_assert!(s.eq_ignore_ascii_case(&h));
                }
                Err(e) => prop_assert_eq!(refusal(&e), (400, "invalid_input")),
            }
        }

        #[test]
        fn content_types_are_type_slash_subtype(s in prop_oneof![hostile_string(40), "[a-z]{1,10}/[a-z0-9.+-]{1,20}"]) {
            if let Ok(ct) = parse_content_type(&s) {
                let (a, b) = ct.split_once('/').unwrap();
                prop_assert!(!a.is_empty() && !b.is_empty() && ct.len() <= 100);
                prop_assert!(!ct.contains(['\r', '\n', ';', ' ', '\0']));
            }
        }

        #[test]
        fn names_never_hold_controls_or_bidi(s in hostile_string(120)) {
            match parse_name("name", &s) {
                Ok(n) => {
                    prop_assert_eq!(n.as_str(), s.trim());
                    prop_assert!((1..=100).contains(&n.chars().count()));
                    prop_assert!(!n.chars().any(is_hidden_control));
                    prop_assert_eq!(parse_name("name", &n).unwrap(), n);
                }
                Err(e) => {
                    prop_assert_eq!(refusal(&e), (400, "invalid_input"));
                    prop_assert!(e.detail.starts_with("name "));
                }
            }
        }

        #[test]
        fn notes_keep_line_breaks_and_refuse_other_controls(s in hostile_string(200)) {
            match parse_notes(&s) {
                Ok(n) => prop_assert!(!n.chars().any(|c| c.is_control() && !"\n\r\t".contains(c))),
                Err(e) => {
                    prop_assert_eq!(refusal(&e), (400, "invalid_input"));
                    prop_assert!(s.chars().any(|c| c.is_control() && !"\n\r\t".contains(c)));
                }
            }
        }

        #[test]
        fn sizes_are_positive(size in any::<i64>()) {
            match parse_size("artifacts[0].size", size) {
                Ok(n) => prop_assert!(size >= 1 && n == size as u64),
                Err(e) => {
                    prop_assert!(size < 1);
                    prop_assert_eq!(refusal(&e), (400, "invalid_input"));
                    prop_assert!(e.detail.starts_with("artifacts[0].size "), "{}", e.detail);
                }
            }
        }

        #[test]
        fn storage_keys_are_bounded_and_visible(s in prop_oneof![hostile_string(60), "[a-z0-9/._-]{1,1030}"]) {
            match parse_storage_key("key", &s) {
                Ok(k) => prop_assert!(!k.is_empty() && k.len() <= 1024 && !k.chars().any(is_hidden_control)),
                Err(e) => prop_assert_eq!(refusal(&e), (400, "invalid_input")),
            }
        }

        #[test]
        fn product_channels_are_the_three_names(s in prop_oneof![hostile_string(10),
            prop::sample::select(vec!["stable", "beta", "dev", "Stable", "stable ", "prod"]).prop_map(String::from)]) {
            match parse_channel(&s) {
                Ok(c) => prop_assert_eq!(c, s.as_str()),
                Err(e) => prop_assert_eq!(refusal(&e), (404, "not_found")),
            }
        }
    }

    #[test]
    fn hidden_controls_include_every_bidi_override_and_isolate() {
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}', '\0', '\u{1B}',
        ] {
            assert!(is_hidden_control(c), "U+{:04X}", c as u32);
        }
        for c in ['a', 'é', 'ש', '😀', ' '] {
            assert!(!is_hidden_control(c));
        }
    }
}
