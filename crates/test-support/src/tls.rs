//! Throwaway certificates for TLS tests: a CA and a server certificate for
//! `localhost` and `127.0.0.1`, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// PEM files for a TLS-enabled redis-server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA that signed the server certificate (what clients must trust).
    pub ca_cert: PathBuf,
    /// The server certificate.
    pub server_cert: PathBuf,
    /// The server certificate's private key.
    pub server_key: PathBuf,
}

fn new_ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().expect("generate a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let pem = params.self_signed(&key).expect("self-sign the CA").pem();
    (params, key, pem)
}

/// Generates a CA and a server certificate signed by it into `dir`.
pub fn write_server_files(dir: &Path) -> TlsFiles {
    let (ca_params, ca_key, ca_pem) = new_ca("redis-layer test CA");
    let server_key = KeyPair::generate().expect("generate a server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_pem = params
        .signed_by(&server_key, &issuer)
        .expect("sign the server cert")
        .pem();

    let files = TlsFiles {
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
    };
    std::fs::write(&files.ca_cert, ca_pem).expect("write ca.crt");
    std::fs::write(&files.server_cert, server_pem).expect("write server.crt");
    std::fs::write(&files.server_key, server_key.serialize_pem()).expect("write server.key");
    files
}

/// Writes a CA certificate that signed nothing, for "wrong CA" tests.
pub fn write_unrelated_ca(path: &Path) {
    let (_, _, pem) = new_ca("an unrelated CA");
    std::fs::write(path, pem).expect("write the unrelated CA");
}
