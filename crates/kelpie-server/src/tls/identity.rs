//! A server identity: a certificate chain and its private key as rustls uses them, with what
//! people check it by (the SHA-256 fingerprints of the certificate and of its public key) and
//! what Kelpie checks (names, expiry).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Why a certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read.
    #[error("cannot read {what} {path}")]
    Read {
        /// "the certificate" or "the private key".
        what: &'static str,
        /// Its path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate text holds no PEM certificate.
    #[error("the certificate file holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    /// A PEM certificate block is broken.
    #[error("the certificate file is not valid PEM")]
    CertificatePem(#[source] rustls::pki_types::pem::Error),
    /// The key text holds no usable private key.
    #[error("the private key file holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC, unencrypted)")]
    KeyPem(#[source] rustls::pki_types::pem::Error),
    /// The certificate is not X.509 that Kelpie can read.
    #[error("the certificate cannot be parsed: {0}")]
    Certificate(String),
    /// rustls cannot sign with the key, or it does not belong to the certificate.
    #[error("the private key cannot be used with the certificate (is it the certificate's key?)")]
    Key(#[source] rustls::Error),
}

/// A certificate chain and its key, ready for handshakes.
#[derive(Debug)]
pub struct Identity {
    /// What rustls serves.
    pub certified: Arc<CertifiedKey>,
    /// SHA-256 of the end-entity certificate (what browsers show as its fingerprint).
    pub fingerprint: [u8; 32],
    /// SHA-256 of its SubjectPublicKeyInfo (what `--ignore-certificate-errors-spki-list`
    /// and HPKP-style pins take); stays the same when a certificate is renewed on the same key.
    pub spki_sha256: [u8; 32],
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
    /// The DNS names and IP addresses it is for (subject alternative names), lower case.
    pub names: Vec<String>,
}

impl Identity {
    /// From PEM text: the certificate chain (end-entity first) and the private key.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        provider: &CryptoProvider,
    ) -> Result<Self, IdentityError> {
        let chain =
            CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>().map_err(|e| match e {
                rustls::pki_types::pem::Error::NoItemsFound => IdentityError::NoCertificate,
                e => IdentityError::CertificatePem(e),
            })?;
        if chain.is_empty() {
            return Err(IdentityError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(IdentityError::KeyPem)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&chain[0])
            .map_err(|e| IdentityError::Certificate(e.to_string()))?;
        let fingerprint = sha256(&chain[0]);
        let spki_sha256 = sha256(parsed.public_key().raw);
        let not_after = parsed.validity().not_after.timestamp();
        let names = subject_names(&parsed);
        let signing = provider.key_provider.load_private_key(key).map_err(IdentityError::Key)?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            // A key type that cannot say its public key: rustls cannot check, nor can Kelpie.
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(e) => return Err(IdentityError::Key(e)),
        }
        Ok(Self { certified: Arc::new(certified), fingerprint, spki_sha256, not_after, names })
    }

    /// Reads the certificate chain and key from PEM files.
    pub fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Self, IdentityError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| IdentityError::Read {
                what,
                path: path.display().to_string(),
                source,
            })
        };
        Self::from_pem(&read("the certificate", cert)?, &read("the private key", key)?, provider)
    }

    /// The certificate's fingerprint as browsers show it: `AB:CD:…` (32 bytes).
    pub fn fingerprint_hex(&self) -> String {
        colon_hex(&self.fingerprint)
    }

    /// The public key's fingerprint, base64: Chromium's `--ignore-certificate-errors-spki-list`.
    pub fn spki_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.spki_sha256)
    }

    /// Whether the certificate names every one of `wanted` (names as [`Identity::names`]).
    pub fn covers(&self, wanted: &[String]) -> bool {
        wanted.iter().all(|w| self.names.iter().any(|n| n.eq_ignore_ascii_case(w)))
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// `AB:CD:…`.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn subject_names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok(Some(san)) = cert.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => Some(IpAddr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                16 => Some(IpAddr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CryptoProvider {
        rustls::crypto::aws_lc_rs::default_provider()
    }

    fn pair(names: &[&str]) -> (String, String, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem(), key)
    }

    #[test]
    fn a_pair_gives_its_fingerprints_names_and_expiry() {
        let (cert, key, kp) = pair(&["localhost", "127.0.0.1", "::1", "Desk.Example.com"]);
        let id = Identity::from_pem(cert.as_bytes(), key.as_bytes(), &provider()).unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        assert_eq!(id.fingerprint, sha256(&der));
        assert_eq!(
            id.spki_sha256,
            sha256(&rcgen::PublicKeyData::subject_public_key_info(&kp)),
            "the pin is the key's SPKI hash"
        );
        assert_eq!(id.fingerprint_hex().len(), 32 * 3 - 1);
        assert!(id.fingerprint_hex().split(':').all(|h| h.len() == 2 && h == h.to_uppercase()));
        assert_eq!(
            base64::engine::general_purpose::STANDARD.decode(id.spki_base64()).unwrap(),
            id.spki_sha256.to_vec()
        );
        assert_eq!(id.names, ["localhost", "127.0.0.1", "::1", "desk.example.com"]);
        assert!(id.covers(&["desk.example.com".into(), "::1".into()]));
        assert!(!id.covers(&["other.example.com".into()]));
        assert!(id.not_after > 4_000_000_000, "rcgen's default validity runs to 4096");
    }

    #[test]
    fn broken_or_mismatched_pairs_are_refused_with_the_reason() {
        let p = provider();
        let (cert, key, _) = pair(&["localhost"]);
        let (_, other_key, _) = pair(&["localhost"]);
        let err =
            |c: &str, k: &str| Identity::from_pem(c.as_bytes(), k.as_bytes(), &p).unwrap_err().to_string();
        assert!(err(&cert, &other_key).contains("is it the certificate's key?"));
        assert!(err("", &key).contains("no PEM certificate"));
        assert!(err(&key, &key).contains("no PEM certificate"), "a key where the certificate should be");
        assert!(err(&cert, &cert).contains("no PEM private key"));
        assert!(err(&cert, "garbage").contains("no PEM private key"));
        let half = &cert[..cert.len() / 2];
        let e = err(half, &key);
        assert!(e.contains("PEM"), "{e}");
        let bogus = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(err(bogus, &key).contains("cannot be parsed"));
        let missing =
            Identity::load(Path::new("/nonexistent/cert.pem"), Path::new("/nonexistent/key.pem"), &p);
        let e = missing.unwrap_err();
        assert!(e.to_string().contains("cannot read the certificate /nonexistent/cert.pem"), "{e}");
    }
}
