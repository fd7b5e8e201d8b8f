//! TLS served by Tessera itself (rustls, aws-lc crypto), when
//! `server.tls.cert` and `server.tls.key` name PEM files; HTTP/2 and
//! HTTP/1.1 are offered by ALPN. Without them Tessera speaks plain HTTP and
//! TLS ends at a proxy.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

/// The server configuration from a certificate chain and its private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!("{}: no certificate", cert.display())));
    }
    // The error names the file, never its contents.
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError(format!("{}: no usable private key ({e})", key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError(format!("the certificate and key don't go together: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
