//! The OTLP/gRPC receiver's TLS, reloaded without a restart. tonic's own
//! server TLS is fixed when the server starts, so gort does the handshakes
//! itself and hands tonic the decrypted streams; every new connection gets
//! the configuration in force when it arrives. The certificate, key and
//! client CA are read again every `receiver.tls.reload_interval`
//! (`watch::watch_files`); when they changed and make a valid configuration,
//! it replaces the old one (connections already open keep theirs).

use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use super::PipelineError;
use crate::config::Tls;

/// Longest a client may take over its handshake before it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn bad(what: &'static str, path: &std::path::Path, e: impl std::fmt::Display) -> PipelineError {
    PipelineError::TlsFile { what, path: path.to_owned(), source: std::io::Error::other(e.to_string()) }
}

/// A server configuration from the files, or why they do not make one.
fn server_config(tls: &Tls) -> Result<ServerConfig, PipelineError> {
    let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) else {
        return Err(PipelineError::TlsFile {
            what: "certificate",
            path: PathBuf::new(),
            source: std::io::Error::other("a server needs cert_file and key_file"),
        });
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| bad("certificate", cert_file, e))?;
    if chain.is_empty() {
        return Err(bad("certificate", cert_file, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| bad("key", key_file, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("certificate", cert_file, e))?;
    let builder = match &tls.ca_file {
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| bad("CA file", ca_file, e))? {
                roots
                    .add(cert.map_err(|e| bad("CA file", ca_file, e))?)
                    .map_err(|e| bad("CA file", ca_file, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| bad("CA file", ca_file, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| bad("key", key_file, e))?;
    // gRPC runs over HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The configuration new connections get.
pub struct ServerTls {
    tls: Tls,
    current: RwLock<Arc<ServerConfig>>,
}

impl ServerTls {
    /// Reads the files at start-up: files that make no configuration fail the start.
    pub fn load(tls: &Tls) -> Result<Arc<Self>, PipelineError> {
        let config = Arc::new(server_config(tls)?);
        Ok(Arc::new(Self { tls: tls.clone(), current: RwLock::new(config) }))
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }

    /// Builds a configuration from the files as they are now; new
    /// connections get it (`watch::watch_files` calls this on a change).
    pub fn reload(&self) -> Result<(), PipelineError> {
        let config = Arc::new(server_config(&self.tls)?);
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        Ok(())
    }
}

/// Accepts connections and shakes hands with each on its own task (a slow
/// client holds up no one); yields the streams that completed a handshake.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        log::warn!("OTLP/gRPC receiver: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = stop.changed() => return,
            };
            let (acceptor, tx) = (tls.acceptor(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => log::debug!("TLS handshake with {peer} failed: {e}"),
                    Err(_) => log::debug!("TLS handshake with {peer} timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
