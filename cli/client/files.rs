//! Local files to ship: `os/arch/kind=path` specs, streaming sha256, readable sizes.

use std::io::Read;
use std::path::{Path, PathBuf};

use atlas_hub::domain::ids::{Arch, Os, parse_filename, parse_kind};

use super::hub::ClientError;

/// A file on disk with its size and sha256.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its file name, as stored and offered for download.
    pub filename: String,
    pub size: u64,
    /// Lower-case hex sha256 (empty until [`LocalFile::hash`]).
    pub sha256: String,
}

impl LocalFile {
    /// A regular, non-empty file with a name the Hub accepts.
    pub fn open(path: &Path) -> Result<LocalFile, ClientError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| ClientError::Usage(format!("{}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(ClientError::Usage(format!(
                "{} is not a file",
                path.display()
            )));
        }
        if meta.len() == 0 {
            return Err(ClientError::Usage(format!("{} is empty", path.display())));
        }
        let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            ClientError::Usage(format!("{} has no usable file name", path.display()))
        })?;
        let filename = parse_filename(name)
            .map_err(|e| ClientError::Usage(format!("{}: {}", path.display(), e.detail)))?;
        Ok(LocalFile {
            path: path.to_owned(),
            filename,
            size: meta.len(),
            sha256: String::new(),
        })
    }

    /// Computes the sha256 reading the file in 1 MiB blocks (never whole into memory), and
    /// checks the size did not change since [`LocalFile::open`].
    pub async fn hash(&mut self) -> Result<(), ClientError> {
        let path = self.path.clone();
        let (size, sha256) = tokio::task::spawn_blocking(move || sha256_file(&path))
            .await
            .map_err(|e| ClientError::Usage(format!("hashing failed: {e}")))?
            .map_err(|e| ClientError::Usage(format!("{}: {e}", self.path.display())))?;
        if size != self.size {
            return Err(ClientError::Usage(format!(
                "{} changed size while it was being read ({} then {size} bytes)",
                self.path.display(),
                self.size
            )));
        }
        self.sha256 = sha256;
        Ok(())
    }
}

/// Size and lower-case hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    use sha2::Digest;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// One release file: `os/arch/kind=path`, with the `.sig` beside it as its signature.
#[derive(Debug, Clone)]
pub struct ReleaseFile {
    pub os: &'static str,
    pub arch: &'static str,
    pub kind: String,
    pub file: LocalFile,
    /// The updater signature: the content of `<path>.sig` when it exists.
    pub signature: Option<String>,
    /// Primary artifact of its platform.
    pub primary: bool,
}

impl ReleaseFile {
    /// `os/arch/kind`.
    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.os, self.arch, self.kind)
    }

    /// Parses `os/arch/kind=path` (aliases such as `macos`, `amd64`, `arm64` accepted).
    pub fn parse(spec: &str) -> Result<ReleaseFile, ClientError> {
        let usage = |why: String| {
            ClientError::Usage(format!(
                "{spec:?}: {why}; give each file as os/arch/kind=path, e.g. linux/x86_64/appimage=dist/app.AppImage"
            ))
        };
        let (target, path) = spec
            .split_once('=')
            .ok_or_else(|| usage("no '=' between the platform and the path".into()))?;
        let mut parts = target.split('/');
        let (Some(os), Some(arch), Some(kind), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(usage(format!("{target:?} is not os/arch/kind")));
        };
        let os = Os::parse(os.trim()).map_err(|e| usage(e.detail))?;
        let arch = Arch::parse(arch.trim()).map_err(|e| usage(e.detail))?;
        let kind = parse_kind(&kind.trim().to_ascii_lowercase()).map_err(|e| usage(e.detail))?;
        let file = LocalFile::open(Path::new(path))?;
        let sig_path = PathBuf::from(format!("{path}.sig"));
        let signature = match std::fs::read_to_string(&sig_path) {
            Ok(s) if !s.trim().is_empty() => {
                // Checked here so a bad .sig fails before anything is uploaded.
                atlas_hub::domain::signature::parse_signature(s.trim()).map_err(|e| {
                    ClientError::Usage(format!("{}: {}", sig_path.display(), e.detail))
                })?;
                Some(s.trim().to_owned())
            }
            Ok(_) => {
                return Err(ClientError::Usage(format!(
                    "{} is empty",
                    sig_path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ClientError::Usage(format!("{}: {e}", sig_path.display()))),
        };
        Ok(ReleaseFile {
            os: os.as_str(),
            arch: arch.as_str(),
            kind,
            file,
            signature,
            primary: false,
        })
    }
}

/// Marks primaries from `--primary os/arch/kind` and checks each platform with several files
/// has exactly one, before anything is uploaded.
pub fn mark_primaries(files: &mut [ReleaseFile], primary: &[String]) -> Result<(), ClientError> {
    for (i, f) in files.iter().enumerate() {
        if files[..i].iter().any(|o| o.label() == f.label()) {
            return Err(ClientError::Usage(format!(
                "{} is given twice: a release has one file per os/arch/kind",
                f.label()
            )));
        }
    }
    for p in primary {
        let wanted = p.trim().to_ascii_lowercase();
        let mut parts = wanted.split('/');
        let (Some(os), Some(arch), Some(kind)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ClientError::Usage(format!(
                "--primary {p:?} is not os/arch/kind"
            )));
        };
        let os = Os::parse(os)
            .map_err(|e| ClientError::Usage(e.detail))?
            .as_str();
        let arch = Arch::parse(arch)
            .map_err(|e| ClientError::Usage(e.detail))?
            .as_str();
        let f = files
            .iter_mut()
            .find(|f| f.os == os && f.arch == arch && f.kind == kind)
            .ok_or_else(|| {
                ClientError::Usage(format!("--primary {p}: no file was given for it"))
            })?;
        f.primary = true;
    }
    let mut platforms: Vec<(&str, &str)> = files.iter().map(|f| (f.os, f.arch)).collect();
    platforms.sort();
    platforms.dedup();
    for (os, arch) in platforms {
        let of: Vec<&ReleaseFile> = files
            .iter()
            .filter(|f| f.os == os && f.arch == arch)
            .collect();
        let marked = of.iter().filter(|f| f.primary).count();
        if of.len() > 1 && marked != 1 {
            let kinds: Vec<&str> = of.iter().map(|f| f.kind.as_str()).collect();
            return Err(ClientError::Usage(format!(
                "{os}/{arch} has {} files ({}): mark exactly one with --primary {os}/{arch}/<kind> \
                 (the one downloads and the installer use)",
                of.len(),
                kinds.join(", ")
            )));
        }
    }
    Ok(())
}

/// `52.4 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Parses a rate such as `500K`, `10M`, `1G` or `2048` (bytes per second).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n * mult)
        .ok_or_else(|| format!("{s:?} is not a rate such as 500K, 10M or 1G (bytes per second)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_sizes_read_like_curl() {
        assert_eq!(parse_rate("10M"), Ok(10 << 20));
        assert_eq!(parse_rate("500k"), Ok(500 << 10));
        assert_eq!(parse_rate("2048"), Ok(2048));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(60 << 20), "60.0 MiB");
    }

    #[test]
    fn specs_need_a_known_platform_and_an_existing_file() {
        let err = ReleaseFile::parse("linux/x86_64/appimage")
            .unwrap_err()
            .to_string();
        assert!(err.contains("os/arch/kind=path"), "{err}");
        let err = ReleaseFile::parse("plan9/x86_64/bin=Cargo.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("linux, windows or darwin"), "{err}");
        let f = ReleaseFile::parse("macos/arm64/tar.gz=Cargo.toml").unwrap();
        assert_eq!(
            (f.os, f.arch, f.kind.as_str()),
            ("darwin", "aarch64", "tar.gz")
        );
        assert!(ReleaseFile::parse("linux/x86_64/bin=does-not-exist").is_err());
    }
}
