//! HTTPS: the server's certificate (from `--tls-cert`/`--tls-key`, reloaded when the files
//! change, or made by Kelpie with `--tls self-signed`), the rustls configuration that serves
//! it, and the counters of what happened. The handshakes themselves are the listener's
//! (`listener::tls`). rustls runs on aws-lc-rs, the crypto library str0m's DTLS already
//! brings: one crypto library in the binary, no OpenSSL.

pub mod identity;
pub mod reload;
pub mod selfsigned;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions};
use rustls::sign::CertifiedKey;

pub use identity::{Identity, IdentityError};
pub use selfsigned::{Obtained, SelfSignedError};

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSetup {
    /// PEM files, watched for changes.
    Files {
        /// The certificate chain, end-entity first.
        cert: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
    /// Made by Kelpie for these names; kept in `dir` if given.
    SelfSigned {
        /// `--tls-dir`.
        dir: Option<PathBuf>,
        /// The names it is for.
        names: Vec<String>,
    },
}

/// Why HTTPS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The files of `--tls-cert` and `--tls-key` cannot be used.
    #[error("cannot serve HTTPS with --tls-cert {} and --tls-key {}", cert.display(), key.display())]
    Files {
        /// `--tls-cert`.
        cert: PathBuf,
        /// `--tls-key`.
        key: PathBuf,
        /// Why.
        #[source]
        source: IdentityError,
    },
    /// The self-signed certificate could not be made or kept.
    #[error("cannot serve HTTPS with a self-signed certificate (--tls self-signed)")]
    SelfSigned(#[source] SelfSignedError),
}

/// Counters of the HTTPS side.
#[derive(Debug, Default)]
pub struct TlsCounters {
    /// Handshakes that failed (a client that does not trust the certificate, or no TLS).
    pub handshake_failures: AtomicU64,
    /// Plain HTTP requests on the HTTPS port, answered with a redirect.
    pub plain_http: AtomicU64,
    /// Certificates loaded again after their files changed.
    pub reloads: AtomicU64,
    /// Changed files that could not be used (the certificate before was kept).
    pub reload_failures: AtomicU64,
}

/// The served certificate, which new handshakes pick up (rustls asks [`ResolvesServerCert`]
/// at each one), and the counters.
#[derive(Debug)]
pub struct Tls {
    current: RwLock<Arc<Identity>>,
    sessions: Arc<Sessions>,
    provider: Arc<CryptoProvider>,
    /// What happened so far.
    pub counters: TlsCounters,
}

impl Tls {
    /// Loads or makes the certificate; watches the files of [`TlsSetup::Files`] (from the tokio
    /// runtime) while the returned value lives.
    pub fn start(setup: &TlsSetup) -> Result<Arc<Self>, TlsError> {
        Self::start_polling(setup, reload::POLL)
    }

    /// As [`Tls::start`], looking at the files every `poll`.
    pub fn start_polling(setup: &TlsSetup, poll: Duration) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        match setup {
            TlsSetup::Files { cert, key } => {
                let stamps = (reload::FileStamp::of(cert), reload::FileStamp::of(key));
                let id = Identity::load(cert, key, &provider).map_err(|source| TlsError::Files {
                    cert: cert.clone(),
                    key: key.clone(),
                    source,
                })?;
                warn_if_ending(&id);
                let tls = Arc::new(Self::new(id, provider));
                reload::spawn(Arc::downgrade(&tls), cert.clone(), key.clone(), stamps, poll);
                Ok(tls)
            }
            TlsSetup::SelfSigned { dir, names } => {
                let (id, how) = selfsigned::obtain(dir.as_deref(), names, SystemTime::now(), &provider)
                    .map_err(TlsError::SelfSigned)?;
                let kept = dir.as_deref().map_or_else(String::new, |d| d.display().to_string());
                match how {
                    Obtained::Fresh => tracing::info!(
                        "made a self-signed certificate for {} (give --tls-dir to keep it across restarts)",
                        names.join(", ")
                    ),
                    Obtained::Created => tracing::info!(
                        "made a self-signed certificate for {} and its key, kept in {kept}",
                        names.join(", ")
                    ),
                    Obtained::Kept => tracing::info!("serving the self-signed certificate kept in {kept}"),
                    Obtained::Renewed(why) => tracing::info!(
                        "made a new self-signed certificate on the key kept in {kept} ({why}): its \
                         SHA-256 changed, its public key's did not"
                    ),
                }
                Ok(Arc::new(Self::new(id, provider)))
            }
        }
    }

    fn new(id: Identity, provider: Arc<CryptoProvider>) -> Self {
        Self {
            current: RwLock::new(Arc::new(id)),
            sessions: Arc::new(Sessions(RwLock::new(ServerSessionMemoryCache::new(SESSIONS)))),
            provider,
            counters: TlsCounters::default(),
        }
    }

    /// The certificate new connections get.
    pub fn identity(&self) -> Arc<Identity> {
        self.current.read().unwrap().clone()
    }

    /// Serves `id` to new connections from now on.
    pub fn replace(&self, id: Identity) {
        warn_if_ending(&id);
        *self.current.write().unwrap() = Arc::new(id);
        // A resumed session skips the certificate: forget those made under the old one.
        *self.sessions.0.write().unwrap() = ServerSessionMemoryCache::new(SESSIONS);
        self.counters.reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// The crypto provider keys are loaded with.
    pub fn provider(&self) -> &CryptoProvider {
        &self.provider
    }

    /// rustls' server configuration: TLS 1.2 and 1.3, HTTP/1.1, the current certificate.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        // Kelpie speaks HTTP/1.1 (WebSockets upgrade from it).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.session_storage = self.sessions.clone();
        Arc::new(config)
    }

    /// Writes the counters and the certificate's end in Prometheus' text format.
    pub fn write_metrics(&self, out: &mut String) {
        let r = Ordering::Relaxed;
        let c = &self.counters;
        use crate::prometheus::{Kind, counters, scalar};
        scalar(
            out,
            "kelpie_tls_certificate_expiry_timestamp_seconds",
            Kind::Gauge,
            "When the served certificate ends (Unix time).",
            self.identity().not_after,
        );
        counters(
            out,
            [
                (
                    "kelpie_tls_handshake_failures_total",
                    "TLS handshakes that failed (clients that do not trust the certificate, or do not speak TLS).",
                    c.handshake_failures.load(r),
                ),
                (
                    "kelpie_tls_plain_http_total",
                    "Plain HTTP requests on the HTTPS port, answered with a redirect to https://.",
                    c.plain_http.load(r),
                ),
                (
                    "kelpie_tls_reloads_total",
                    "Certificates loaded again after --tls-cert or --tls-key changed.",
                    c.reloads.load(r),
                ),
                (
                    "kelpie_tls_reload_failures_total",
                    "Changed --tls-cert/--tls-key files that could not be used (the certificate before was kept).",
                    c.reload_failures.load(r),
                ),
            ],
        );
    }
}

impl ResolvesServerCert for Tls {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.identity().certified.clone())
    }
}

/// Sessions remembered for resumption (rustls' default number).
const SESSIONS: usize = 256;

/// The resumable sessions, emptied when the certificate changes: a client that resumes a
/// session gets no certificate, so it would otherwise go on under the old one.
#[derive(Debug)]
struct Sessions(RwLock<Arc<ServerSessionMemoryCache>>);

impl StoresServerSessions for Sessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.0.read().unwrap().put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.read().unwrap().get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.read().unwrap().take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

fn warn_if_ending(id: &Identity) {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let days = (id.not_after - now) / 86400;
    if id.not_after <= now {
        tracing::warn!(
            "the certificate (SHA-256 {}) has expired: browsers will refuse it",
            id.fingerprint_hex()
        );
    } else if days < 14 {
        tracing::warn!("the certificate (SHA-256 {}) ends in {days} days: renew it", id.fingerprint_hex());
    }
}

#[cfg(test)]
mod tests;
