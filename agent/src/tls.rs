//! TLS material read from PEM files (mounted Secrets): the agent's mutual-TLS server
//! configuration, the client side of `couchestor-agent health`, and certificate validity
//! for `check` and `GetHealth`.
//!
//! Every error names the file it comes from. Cryptography is rustls with the ring provider.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

/// A certificate expiring within this many days is reported as a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

const SECS_PER_DAY: i64 = 86_400;

/// Errors loading TLS material. Each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file's content is not usable.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl TlsError {
    fn invalid(path: &Path, reason: impl ToString) -> Self {
        Self::Invalid {
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// rustls' ring crypto provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads every PEM certificate of a file; fails when there is none or one is not X.509.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::invalid(path, format!("malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::invalid(
            path,
            "no PEM certificate (BEGIN CERTIFICATE) found",
        ));
    }
    for cert in &certs {
        CertSummary::parse(cert).map_err(|e| TlsError::invalid(path, e))?;
    }
    Ok(certs)
}

/// Reads the first PEM private key (PKCS#8, PKCS#1 or SEC1) of a file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem_bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem_bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::invalid(path, "no PEM private key found"),
        e => TlsError::invalid(path, format!("malformed PEM: {e}")),
    })
}

/// Checks that the private key in `key` belongs to the first certificate in `cert`.
pub fn check_key_matches(cert: &Path, key: &Path) -> Result<(), TlsError> {
    let chain = read_certs(cert)?;
    let key_der = read_key(key)?;
    CertifiedKey::from_der(chain, key_der, &provider())
        .map_err(|e| TlsError::invalid(key, format!("does not fit {}: {e}", cert.display())))?
        .keys_match()
        .map_err(|e| TlsError::invalid(key, format!("does not fit {}: {e}", cert.display())))
}

/// The server side of mutual TLS: presents `cert`/`key`, requires every client to present
/// a certificate issued by a CA in `client_ca`, and offers HTTP/2 by ALPN.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let chain = read_certs(cert)?;
    let key_der = read_key(key)?;
    let mut roots = RootCertStore::empty();
    for ca in read_certs(client_ca)? {
        roots
            .add(ca)
            .map_err(|e| TlsError::invalid(client_ca, format!("unusable CA certificate: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::invalid(client_ca, format!("cannot verify clients with it: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::invalid(cert, e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_der)
        .map_err(|e| TlsError::invalid(key, format!("does not fit {}: {e}", cert.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The client side of mutual TLS for tonic: trusts `ca`, presents `cert`/`key`, and
/// expects the server certificate to name `server_name`.
pub fn client_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
    server_name: &str,
) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    // Parse first, so a bad file is reported by name rather than at connection time.
    read_certs(ca)?;
    check_key_matches(cert, key)?;
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(ca)?))
        .identity(Identity::from_pem(read(cert)?, read(key)?))
        .domain_name(server_name))
}

/// Subject and validity period of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject distinguished name, e.g. `CN=couchestor-agent`.
    pub subject: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// End of validity as written in the certificate's text form.
    pub not_after_text: String,
}

/// Where a certificate stands at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Valid for more than [`EXPIRY_WARNING_DAYS`].
    Valid {
        /// Whole days left.
        days_left: i64,
    },
    /// Valid, but expires within [`EXPIRY_WARNING_DAYS`].
    ExpiringSoon {
        /// Whole days left.
        days_left: i64,
    },
    /// Past its end of validity.
    Expired,
    /// Before its start of validity.
    NotYetValid,
}

impl CertSummary {
    /// Parses a DER certificate.
    pub fn parse(der: &CertificateDer<'_>) -> Result<Self, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let validity = cert.validity();
        Ok(Self {
            subject: cert.subject().to_string(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            not_after_text: validity.not_after.to_string(),
        })
    }

    /// Validity at `now`.
    pub fn validity(&self, now: SystemTime) -> Validity {
        let now = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        if now < self.not_before {
            return Validity::NotYetValid;
        }
        if now > self.not_after {
            return Validity::Expired;
        }
        let days_left = (self.not_after - now) / SECS_PER_DAY;
        if days_left < EXPIRY_WARNING_DAYS {
            Validity::ExpiringSoon { days_left }
        } else {
            Validity::Valid { days_left }
        }
    }

    /// One line for reports, e.g. `CN=agent, expires Jan 1 00:00:00 2030 +00:00 (1500 days)`.
    pub fn describe(&self, now: SystemTime) -> String {
        let validity = match self.validity(now) {
            Validity::Valid { days_left } | Validity::ExpiringSoon { days_left } => {
                format!("expires {} (in {days_left} days)", self.not_after_text)
            }
            Validity::Expired => format!("EXPIRED on {}", self.not_after_text),
            Validity::NotYetValid => "not valid yet".to_owned(),
        };
        format!("{}, {validity}", self.subject)
    }
}

#[cfg(test)]
mod tests;
