//! The OTLP exporters' HTTP client, with TLS: rustls on the ring provider
//! (no aws-lc-rs, which needs cmake), trusting the CA certificates of
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` or else the system's roots, as the
//! Redis connection does with `REDIS_TLS_CA_FILE`.
//!
//! One client serves both exporters (traces and metrics). It is blocking:
//! the SDK calls it from its own export threads, never from a request.

use std::path::Path;
use std::sync::Arc;

use otlp_reqwest::blocking::Client;
use redis_connection::ConfigError;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::otel_config::OtelConfig;

const CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";

/// The client for `config`'s endpoints.
///
/// # Errors
/// The certificate file is unreadable or holds no certificate, or an
/// `https://` endpoint is set and nothing is trusted (no file, and no
/// system roots).
pub(crate) fn client(config: &OtelConfig) -> Result<Client, ConfigError> {
    let any_https = [&config.traces_endpoint, &config.metrics_endpoint]
        .into_iter()
        .flatten()
        .any(|url| url.starts_with("https://"));
    let mut roots = rustls::RootCertStore::empty();
    match &config.certificate {
        Some(path) => {
            for cert in ca_file(path)? {
                roots
                    .add(cert)
                    .map_err(|e| bad_file(path, &e.to_string()))?;
            }
        }
        // Only an https endpoint needs roots: http ones skip reading them.
        None if any_https => {
            // Unreadable system certificates are skipped; only none at all is fatal.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(ConfigError::new(
                    CERTIFICATE,
                    "no trusted root certificates found on this system for the https OTLP endpoint; set it to a CA file",
                ));
            }
        }
        None => {}
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new(CERTIFICATE, e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let timeout = config.timeout;
    // reqwest's blocking client runs a runtime of its own, which may not be
    // built (or dropped) inside the service's tokio runtime: build it on a
    // thread of its own.
    std::thread::spawn(move || {
        Client::builder()
            .timeout(timeout)
            .tls_backend_preconfigured(tls)
            .build()
    })
    .join()
    .map_err(|_| ConfigError::new(CERTIFICATE, "building the OTLP HTTP client panicked"))?
    .map_err(|e| ConfigError::new(CERTIFICATE, format!("the OTLP HTTP client: {e}")))
}

/// The certificates of a PEM file; at least one.
fn ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad_file(path, &e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_file(path, &e.to_string()))?;
    if certs.is_empty() {
        return Err(bad_file(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

fn bad_file(path: &Path, reason: &str) -> ConfigError {
    ConfigError::new(CERTIFICATE, format!("{}: {reason}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A certificate file that is missing or holds no certificate is a
    // start-up error naming the variable.
    #[test]
    fn a_bad_certificate_file_is_an_error_naming_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        for path in [dir.path().join("missing.pem"), empty] {
            let err = ca_file(&path).unwrap_err();
            assert_eq!(err.variable, CERTIFICATE);
            assert!(err.reason.contains(&path.display().to_string()));
        }
    }
}
