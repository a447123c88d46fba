//! HTTPS for the receiver: rustls with the `ring` provider (the one lettre's SMTP client
//! uses, so the binary carries one crypto provider), HTTP/1.1 only, and a certificate that
//! SIGHUP replaces without dropping a connection: new handshakes get the new certificate,
//! open connections keep the one they started with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::reload::Slot;

/// One year, the `max-age` browsers' preload lists ask for.
pub const DEFAULT_HSTS_MAX_AGE_SECS: u64 = 31_536_000;

/// `[server.tls]`: serve HTTPS with this certificate and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file: the server certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// `Strict-Transport-Security: max-age=…` on every answer, in seconds; 0 sends
    /// `max-age=0`, which tells browsers to forget an earlier promise.
    #[serde(default = "default_hsts_max_age")]
    pub hsts_max_age_secs: u64,
}

fn default_hsts_max_age() -> u64 {
    DEFAULT_HSTS_MAX_AGE_SECS
}

impl TlsSettings {
    /// The HSTS header value.
    #[must_use]
    pub fn hsts_value(&self) -> String {
        format!("max-age={}", self.hsts_max_age_secs)
    }
}

/// A certificate or key that cannot be served. The message names the file, never key bytes.
#[derive(Debug, Error)]
pub enum TlsError {
    /// The file cannot be read or holds no usable PEM block.
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The key does not belong to the certificate, or rustls refuses the pair.
    #[error("{cert} and {key} do not form a usable pair: {problem}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        problem: String,
    },
}

fn file_error(path: &Path, problem: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// The one crypto provider: ring, as lettre's rustls uses.
#[must_use]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks a certificate chain and its key.
///
/// # Errors
/// [`TlsError`] naming the file that is unreadable, empty or not PEM, or the pair that
/// does not match.
pub fn load(settings: &TlsSettings) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&settings.cert)
        .map_err(|e| file_error(&settings.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&settings.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(&settings.cert, "holds no CERTIFICATE block"));
    }
    // The error text of a key parse never quotes the key; it is still reduced to a fixed
    // sentence so nothing of the file reaches a log.
    let key = PrivateKeyDer::from_pem_file(&settings.key).map_err(|_| {
        file_error(
            &settings.key,
            "holds no readable PRIVATE KEY block (PKCS#8, PKCS#1 or SEC1 PEM)",
        )
    })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Pair {
        cert: settings.cert.clone(),
        key: settings.key.clone(),
        problem: e.to_string(),
    })
}

/// The certificate new handshakes get; a reload (SIGHUP) replaces it.
pub type CertificateSlot = Slot<CertifiedKey>;

impl ResolvesServerCert for CertificateSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The server's rustls configuration: TLS 1.2 and 1.3 with ring, HTTP/1.1 over ALPN, the
/// certificate from `slot`.
///
/// # Errors
/// When the provider refuses its own default protocol versions (it does not).
pub fn server_config(slot: Arc<CertificateSlot>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| file_error(Path::new("rustls"), e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(slot);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> TlsSettings {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
        TlsSettings {
            cert: cert_path,
            key: key_path,
            hsts_max_age_secs: DEFAULT_HSTS_MAX_AGE_SECS,
        }
    }

    #[test]
    fn a_matching_pair_loads_and_a_swapped_key_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write_pair(dir.path(), "a");
        let b = write_pair(dir.path(), "b");
        load(&a).expect("a loads");
        let mixed = TlsSettings {
            key: b.key.clone(),
            ..a.clone()
        };
        let error = load(&mixed).expect_err("a's cert with b's key").to_string();
        assert!(
            error.contains("a.crt") && error.contains("b.key"),
            "{error}"
        );
    }

    #[test]
    fn a_file_without_pem_is_named_and_its_bytes_are_not_quoted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write_pair(dir.path(), "a");
        std::fs::write(&a.key, "not-a-key-SECRETBYTES").expect("write");
        let error = load(&a).expect_err("no key").to_string();
        assert!(error.contains("a.key"), "{error}");
        assert!(!error.contains("SECRETBYTES"), "{error}");
        std::fs::write(&a.cert, "").expect("write");
        let error = load(&a).expect_err("no cert").to_string();
        assert!(error.contains("no CERTIFICATE block"), "{error}");
    }

    #[test]
    fn the_slot_serves_the_replacement() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load(&write_pair(dir.path(), "a")).expect("a");
        let b = load(&write_pair(dir.path(), "b")).expect("b");
        let b_cert = b.cert.clone();
        let slot = CertificateSlot::new(Arc::new(a));
        slot.replace(Arc::new(b));
        assert_eq!(slot.current().cert, b_cert);
    }
}
