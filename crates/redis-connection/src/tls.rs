//! TLS for `rediss://`: rustls with the ring provider.
//!
//! We build the rustls configuration ourselves, with an explicit crypto
//! provider, instead of fred's `default_rustls()`: that one relies on a
//! process-wide default provider and panics when a binary links two.

use crate::config::TlsOptions;
use crate::error::ConnectionError;

pub(crate) fn fred_tls(
    options: &TlsOptions,
    cluster: bool,
) -> Result<fred::types::config::TlsConfig, ConnectionError> {
    use std::sync::Arc;

    use fred::types::config::{TlsConfig, TlsConnector, TlsHostMapping};
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    match &options.ca_file {
        Some(path) => {
            let bad_file = |reason: String| {
                ConnectionError::Config(crate::reader::ConfigError::new(
                    "REDIS_TLS_CA_FILE",
                    format!("{}: {reason}", path.display()),
                ))
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad_file(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad_file(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad_file("holds no PEM certificate".to_owned()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad_file(e.to_string()))?;
            }
        }
        None => {
            // Unreadable system certificates are skipped; only an empty store is fatal.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(ConnectionError::Tls {
                    reason: "no trusted root certificates found on this system; \
                             set REDIS_TLS_CA_FILE"
                        .to_owned(),
                    cause: None,
                });
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectionError::Tls {
            reason: e.to_string(),
            cause: None,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConfig {
        connector: TlsConnector::from(config),
        // Cluster nodes announce IP addresses, but managed services (Azure)
        // issue certificates for the host name: verify against the seed's name.
        hostnames: if cluster {
            TlsHostMapping::DefaultHost
        } else {
            TlsHostMapping::None
        },
    })
}
