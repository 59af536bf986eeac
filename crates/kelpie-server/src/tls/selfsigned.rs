//! `--tls self-signed`: a certificate Kelpie makes for itself, for the names browsers may reach
//! it by. No browser trusts it by itself: the user compares the SHA-256 fingerprint printed
//! beside the URL with the one the browser shows, or pins its public key. With `--tls-dir`
//! the key and certificate are kept (key 0600 in a 0700 directory) so that both fingerprints
//! stay the same across restarts; the certificate is made again on the same key (the public
//! key's fingerprint stays) when it nears its end or lacks a name now wanted.

use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;

use super::identity::{Identity, IdentityError};

/// How long a certificate is valid: the most any browser accepts for a server certificate,
/// Apple's included (398 days).
const VALIDITY: Duration = Duration::from_secs(397 * 24 * 3600);
/// A kept certificate with less than this left is made again (on the same key).
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a self-signed certificate could not be made or kept.
#[derive(Debug, thiserror::Error)]
pub enum SelfSignedError {
    /// rcgen failed.
    #[error("cannot make a self-signed certificate")]
    Generate(#[source] rcgen::Error),
    /// A file or the directory could not be used.
    #[error("cannot {what} {}", path.display())]
    Io {
        /// What Kelpie was doing.
        what: &'static str,
        /// With which file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The directory or key file is open to other users.
    #[error("{} is {what}: make it private (chmod {mode:o} {}) or give another --tls-dir", path.display(), path.display())]
    NotPrivate {
        /// The file.
        path: PathBuf,
        /// How it is open.
        what: String,
        /// The mode to give it.
        mode: u32,
    },
    /// The kept key cannot be read.
    #[error(
        "the kept key {} cannot be used (remove it to make a new key; the certificate's fingerprints will change)",
        path.display()
    )]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
    /// What Kelpie made cannot be read back.
    #[error("the self-signed certificate cannot be used")]
    Identity(#[source] IdentityError),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SelfSignedError + 'a {
    move |source| SelfSignedError::Io { what, path: path.to_path_buf(), source }
}

/// The names a self-signed certificate is made for: `localhost`, this machine's host name,
/// the loopback addresses, and `extra` (the listen address, the public URL's host,
/// `--public-ip`, `--tls-name`), without repeats, in that order.
pub fn names(hostname: Option<&str>, extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let fixed = ["localhost", "127.0.0.1", "::1"].map(String::from);
    let host = hostname.filter(|h| is_dns_name(h)).map(str::to_ascii_lowercase);
    for n in fixed.into_iter().chain(host).chain(extra.iter().map(|n| normalise_name(n))) {
        if !n.is_empty() && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// A name as a certificate holds it: IP addresses in canonical form (no brackets), DNS names
/// in lower case.
fn normalise_name(n: &str) -> String {
    let bare = n.trim().trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().to_string(),
        Err(_) => bare.to_ascii_lowercase(),
    }
}

/// Whether `s` is a DNS name a certificate may hold (letters, digits, hyphens, dots; a
/// leading `*.` for a wildcard).
pub fn is_dns_name(s: &str) -> bool {
    let s = s.strip_prefix("*.").unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether `s` may be given to `--tls-name`: a DNS name or an IP address.
pub fn is_certificate_name(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok() || is_dns_name(s)
}

/// This machine's host name.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok().filter(|h| !h.is_empty())
}

/// What to do with the certificate kept in `--tls-dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Serve it.
    Keep,
    /// Make a new certificate on the kept key, for this reason.
    Renew(String),
}

/// Decides about the kept certificate for the `wanted` names at `now` (seconds since the
/// Unix epoch).
pub fn plan(kept: &Identity, wanted: &[String], now: i64) -> Plan {
    let missing: Vec<&str> =
        wanted.iter().filter(|w| !kept.covers(std::slice::from_ref(w))).map(String::as_str).collect();
    if !missing.is_empty() {
        return Plan::Renew(format!("the kept one lacks {}", missing.join(", ")));
    }
    let left = kept.not_after - now;
    if left < RENEW_BEFORE.as_secs() as i64 {
        return Plan::Renew(format!("the kept one ends in {} days", left.max(0) / 86400));
    }
    Plan::Keep
}

/// Makes a certificate for `names` on `key`, valid from a day before `now`.
pub fn generate(names: &[String], key: &rcgen::KeyPair, now: SystemTime) -> Result<String, SelfSignedError> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose, SerialNumber};
    let mut params = CertificateParams::new(names.to_vec()).map_err(SelfSignedError::Generate)?;
    let now = time::OffsetDateTime::from(now);
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + VALIDITY;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let host =
        names.iter().find(|n| is_dns_name(n) && *n != "localhost").map_or("this machine", String::as_str);
    params.distinguished_name.push(DnType::CommonName, format!("Kelpie on {host} (self-signed)"));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // A random serial: browsers refuse two different certificates with the same issuer and
    // serial, which a renewal on the same key and name would otherwise be.
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).expect("the OS has a random source");
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(params.self_signed(key).map_err(SelfSignedError::Generate)?.pem())
}

/// What [`obtain`] did, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Obtained {
    /// Made for this run only (no `--tls-dir`).
    Fresh,
    /// The kept certificate, as it was.
    Kept,
    /// A new certificate on the kept key, for this reason.
    Renewed(String),
    /// A new key and certificate, now kept.
    Created,
}

/// The self-signed identity for `names`: made fresh, or kept in `dir`.
pub fn obtain(
    dir: Option<&Path>,
    names: &[String],
    now: SystemTime,
    provider: &CryptoProvider,
) -> Result<(Identity, Obtained), SelfSignedError> {
    let Some(dir) = dir else {
        let key = rcgen::KeyPair::generate().map_err(SelfSignedError::Generate)?;
        let cert = generate(names, &key, now)?;
        let id = Identity::from_pem(cert.as_bytes(), key.serialize_pem().as_bytes(), provider)
            .map_err(SelfSignedError::Identity)?;
        return Ok((id, Obtained::Fresh));
    };
    private_dir(dir)?;
    let key_path = dir.join("key.pem");
    let cert_path = dir.join("cert.pem");
    let (key, created) = match read_private(&key_path)? {
        Some(pem) => {
            let key = rcgen::KeyPair::from_pem(&pem)
                .map_err(|source| SelfSignedError::BadKey { path: key_path.clone(), source })?;
            (key, false)
        }
        None => {
            let key = rcgen::KeyPair::generate().map_err(SelfSignedError::Generate)?;
            write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
            (key, true)
        }
    };
    let key_pem = key.serialize_pem();
    let kept = match std::fs::read(&cert_path) {
        Ok(pem) => Identity::from_pem(&pem, key_pem.as_bytes(), provider)
            .inspect_err(|e| {
                tracing::warn!(
                    "the kept certificate {} cannot be used ({}): making a new one on the kept key",
                    cert_path.display(),
                    kelpie_media::error_chain(e)
                );
            })
            .ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("read", &cert_path)(e)),
    };
    let unix_now = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let why = match kept {
        Some(id) => match plan(&id, names, unix_now) {
            Plan::Keep => return Ok((id, Obtained::Kept)),
            Plan::Renew(why) => why,
        },
        None => "there was none to keep".into(),
    };
    let cert = generate(names, &key, now)?;
    write_new(&cert_path, cert.as_bytes(), 0o644)?;
    let id = Identity::from_pem(cert.as_bytes(), key_pem.as_bytes(), provider)
        .map_err(SelfSignedError::Identity)?;
    Ok((id, if created { Obtained::Created } else { Obtained::Renewed(why) }))
}

/// Creates `dir` (0700) if missing; refuses one that others may enter or that is not ours.
fn private_dir(dir: &Path) -> Result<(), SelfSignedError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err("create the directory", parent))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create the directory (--tls-dir)", dir)(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io_err("look at", dir))?;
    if !meta.is_dir() {
        return Err(io_err("use as --tls-dir", dir)(std::io::Error::other("not a directory")));
    }
    check_private(dir, &meta, 0o700)
}

/// Refuses a file others may read (or, for a directory, enter) or that another user owns.
fn check_private(path: &Path, meta: &std::fs::Metadata, mode: u32) -> Result<(), SelfSignedError> {
    // SAFETY: geteuid has no failure mode and touches no memory of ours.
    let me = unsafe { libc::geteuid() };
    let what = if meta.uid() != me {
        format!("owned by uid {}, not by Kelpie's uid {me}", meta.uid())
    } else if meta.mode() & 0o077 != 0 {
        format!("open to other users (mode {:o})", meta.mode() & 0o777)
    } else {
        return Ok(());
    };
    Err(SelfSignedError::NotPrivate { path: path.to_path_buf(), what, mode })
}

/// The content of the private file `path`, `None` if there is none.
fn read_private(path: &Path) -> Result<Option<String>, SelfSignedError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("look at", path)(e)),
    };
    check_private(path, &meta, 0o600)?;
    std::fs::read_to_string(path).map(Some).map_err(io_err("read", path))
}

/// Writes `path` whole or not at all: a new file with `mode` beside it, renamed over it.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), SelfSignedError> {
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).expect("the OS has a random source");
    let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = path.with_extension(format!("tmp-{hex}"));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // The umask may have taken bits away: a certificate others may read is fine, but set
        // exactly what was asked.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    written.inspect_err(|_| drop(std::fs::remove_file(&tmp))).map_err(io_err("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CryptoProvider {
        rustls::crypto::aws_lc_rs::default_provider()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kelpie-selfsigned-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn names_cover_the_machine_and_what_was_given_once() {
        let extra =
            ["192.0.2.1", "[::1]", "Desk.Example.com", "2001:DB8::1", "desk.example.com"].map(String::from);
        let n = names(Some("Build-01"), &extra);
        assert_eq!(
            n,
            ["localhost", "127.0.0.1", "::1", "build-01", "192.0.2.1", "desk.example.com", "2001:db8::1"]
        );
        assert_eq!(names(Some("bad_host name"), &[]), ["localhost", "127.0.0.1", "::1"]);
        assert!(is_certificate_name("*.example.com") && is_certificate_name("10.0.0.1"));
        for bad in ["", "a..b", "-a.com", "a b", "a_b.com", "é.com", "*"] {
            assert!(!is_certificate_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_certificate_is_made_for_the_names_and_a_year() {
        let now = SystemTime::now();
        let wanted = names(Some("desk"), &["192.0.2.7".into()]);
        let (id, how) = obtain(None, &wanted, now, &provider()).unwrap();
        assert_eq!(how, Obtained::Fresh);
        assert!(id.covers(&wanted), "{:?}", id.names);
        let t = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!((id.not_after - t - VALIDITY.as_secs() as i64).abs() < 5);
        assert_eq!(plan(&id, &wanted, t), Plan::Keep);
        let (other, _) = obtain(None, &wanted, now, &provider()).unwrap();
        assert_ne!(other.spki_sha256, id.spki_sha256, "each run without --tls-dir has its own key");
    }

    #[test]
    fn a_kept_certificate_is_renewed_for_new_names_or_near_its_end() {
        let now = SystemTime::now();
        let t = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
        let wanted = names(None, &[]);
        let (id, _) = obtain(None, &wanted, now, &provider()).unwrap();
        assert_eq!(plan(&id, &wanted, t + 300 * 86400), Plan::Keep);
        let Plan::Renew(why) = plan(&id, &wanted, t + 380 * 86400) else {
            panic!("not renewed near its end")
        };
        assert!(why.contains("ends in 17 days"), "{why}");
        assert!(matches!(plan(&id, &wanted, t + 500 * 86400), Plan::Renew(_)), "expired");
        let more = names(None, &["desk.example.com".into()]);
        assert_eq!(plan(&id, &more, t), Plan::Renew("the kept one lacks desk.example.com".into()));
    }

    #[test]
    fn tls_dir_keeps_key_and_certificate_privately_across_restarts() {
        let dir = temp_dir("keep").join("tls");
        let p = provider();
        let now = SystemTime::now();
        let wanted = names(Some("desk"), &[]);
        let (first, how) = obtain(Some(&dir), &wanted, now, &p).unwrap();
        assert_eq!(how, Obtained::Created);
        assert_eq!(
            (mode(&dir), mode(&dir.join("key.pem")), mode(&dir.join("cert.pem"))),
            (0o700, 0o600, 0o644)
        );
        let (again, how) = obtain(Some(&dir), &wanted, now + Duration::from_secs(60), &p).unwrap();
        assert_eq!(how, Obtained::Kept);
        assert_eq!(again.fingerprint, first.fingerprint, "the same certificate after a restart");
        // A new name: a new certificate on the same key, so the key's pin still holds.
        let more = names(Some("desk"), &["desk.example.com".into()]);
        let (renewed, how) = obtain(Some(&dir), &more, now, &p).unwrap();
        assert!(matches!(how, Obtained::Renewed(ref why) if why.contains("desk.example.com")), "{how:?}");
        assert_ne!(renewed.fingerprint, first.fingerprint);
        assert_eq!(renewed.spki_sha256, first.spki_sha256);
        // A year on: renewed again on the same key.
        let later = now + Duration::from_secs(380 * 86400);
        let (_, how) = obtain(Some(&dir), &more, later, &p).unwrap();
        assert!(matches!(how, Obtained::Renewed(ref why) if why.contains("ends in")), "{how:?}");
        // A broken certificate file is replaced; a broken key is not silently replaced.
        std::fs::write(dir.join("cert.pem"), "junk").unwrap();
        let (fixed, how) = obtain(Some(&dir), &more, now, &p).unwrap();
        assert!(matches!(how, Obtained::Renewed(_)) && fixed.spki_sha256 == first.spki_sha256, "{how:?}");
        std::fs::write(dir.join("key.pem"), "junk").unwrap();
        let e = obtain(Some(&dir), &more, now, &p).unwrap_err().to_string();
        assert!(e.contains("remove it to make a new key"), "{e}");
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn tls_dir_open_to_others_is_refused() {
        let dir = temp_dir("open");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e =
            obtain(Some(&dir), &names(None, &[]), SystemTime::now(), &provider()).unwrap_err().to_string();
        assert!(e.contains("open to other users (mode 755)") && e.contains("chmod 700"), "{e}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        obtain(Some(&dir), &names(None, &[]), SystemTime::now(), &provider()).unwrap();
        std::fs::set_permissions(dir.join("key.pem"), std::fs::Permissions::from_mode(0o640)).unwrap();
        let e =
            obtain(Some(&dir), &names(None, &[]), SystemTime::now(), &provider()).unwrap_err().to_string();
        assert!(e.contains("key.pem is open to other users (mode 640)") && e.contains("chmod 600"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
