//! rustls client configuration from PEM files, with the *ring* provider chosen explicitly
//! (aws-lc-rs, rustls' default, is hard to cross-compile for ARM boards).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::mqtt::{MqttConfig, TransportError};

/// Build the TLS configuration of an `mqtts://` session: trust `ca_file` (or the system's
/// roots), and present `client_cert`/`client_key` if given.
pub(super) fn client_config(config: &MqttConfig) -> Result<Arc<ClientConfig>, TransportError> {
    let mut roots = RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            let (added, _) = roots.add_parsable_certificates(certificates(path)?);
            if added == 0 {
                return Err(file_error(path, "holds no usable CA certificate"));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(TransportError::InvalidConfig(
                    "mqtts:// without ca_file, and no system CA certificates were found".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::InvalidConfig(format!("TLS setup: {e}")))?
        .with_root_certificates(roots);
    let tls = match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key_path)) => {
            let key = PrivateKeyDer::from_pem_slice(&read(key_path)?)
                .map_err(|e| file_error(key_path, &format!("no usable private key: {e}")))?;
            builder
                .with_client_auth_cert(certificates(cert)?, key)
                .map_err(|e| {
                    file_error(key_path, &format!("does not fit {}: {e}", cert.display()))
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(tls))
}

/// Every certificate in a PEM file; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, &format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

fn read(path: &Path) -> Result<Vec<u8>, TransportError> {
    std::fs::read(path).map_err(|e| file_error(path, &format!("cannot be read: {e}")))
}

fn file_error(path: &Path, reason: &str) -> TransportError {
    TransportError::TlsFile {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::BrokerUrl;

    fn tls_config(ca: &Path) -> MqttConfig {
        let broker: BrokerUrl = "mqtts://localhost".parse().expect("valid URL");
        let mut config = MqttConfig::new(broker, "device");
        config.ca_file = Some(ca.to_owned());
        config
    }

    #[test]
    fn missing_ca_file_is_named() {
        let path = Path::new("/nonexistent/outpost-ca.pem");
        let error = client_config(&tls_config(path)).expect_err("no such file");
        let message = error.to_string();
        assert!(message.contains("/nonexistent/outpost-ca.pem"), "{message}");
        assert!(message.contains("cannot be read"), "{message}");
    }

    #[test]
    fn ca_file_without_certificates_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let message = client_config(&tls_config(&path))
            .expect_err("no certs")
            .to_string();
        assert!(
            message.contains("ca.pem") && message.contains("no PEM certificate"),
            "{message}"
        );
    }
}
