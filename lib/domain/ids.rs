//! Identifiers as the contract defines them (SPEC §3): parse, don't validate.

use std::fmt;

use crate::http::{ApiError, quoted};

fn invalid(field: &str, value: &str, expected: &str) -> ApiError {
    ApiError::invalid(format!(
        "{field} {} is not valid: expected {expected}",
        quoted(value)
    ))
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
    /// The slug.
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
    /// The SemVer value.
    pub fn semver(&self) -> &semver::Version {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Operating systems artifacts target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Os {
    /// Linux.
    Linux,
    /// Windows.
    Windows,
    /// macOS.
    Darwin,
}

impl Os {
    /// Parses an OS name; `macos` is accepted for `darwin`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "linux" => Ok(Os::Linux),
            "windows" => Ok(Os::Windows),
            "darwin" | "macos" => Ok(Os::Darwin),
            _ => Err(invalid("os", s, "linux, windows or darwin (macos)")),
        }
    }
    /// Canonical name.
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
    /// x86-64.
    X86_64,
    /// 64-bit ARM.
    Aarch64,
    /// 32-bit x86.
    I686,
    /// 32-bit ARM.
    Armv7,
    /// RISC-V 64.
    Riscv64,
}

impl Arch {
    /// Parses an architecture; `amd64` and `arm64` are accepted.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            "i686" => Ok(Arch::I686),
            "armv7" => Ok(Arch::Armv7),
            "riscv64" => Ok(Arch::Riscv64),
            _ => Err(invalid(
                "arch",
                s,
                "x86_64 (amd64), aarch64 (arm64), i686, armv7 or riscv64",
            )),
        }
    }
    /// Canonical name.
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
    /// OS.
    pub os: Os,
    /// Architecture.
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
            "kind",
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
