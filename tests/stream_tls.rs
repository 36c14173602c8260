//! `wss://` trusts what REST trusts: the platform's verifier (the operating system's trust
//! store), not a root list built into the SDK.
//!
//! A loopback TLS server presents a certificate signed by a private test CA
//! (`tests/support_stream/tls/`, generated once with openssl, valid for a century). The CA is
//! put into the platform trust store the way Linux allows it for one process,
//! `SSL_CERT_FILE`: a built-in root list (webpki-roots, what the streams used before) would
//! refuse the server, the platform verifier accepts it. A second server, self-signed and
//! trusted by nobody, is refused. This file holds one test: the environment variable is
//! process-wide and must be set before the first TLS connection.

use std::{path::Path, sync::Arc};

use connect_trade::{
    PlatformCredentials,
    stream::{BrokerageStream, StreamConfig, StreamError},
};
use futures::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support_stream/tls")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A `wss://localhost` server with this certificate; it sends a welcome and answers the
/// authenticate message.
async fn tls_server(cert: &str, key: &str) -> String {
    let certs = vec![CertificateDer::from(fixture(cert))];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(fixture(key)));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                let _ = ws.send(Message::text(r#"{"type":"welcome"}"#)).await;
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() {
                        let _ = ws.send(Message::text(r#"{"type":"authenticated"}"#)).await;
                    }
                }
            });
        }
    });
    format!("wss://localhost:{port}")
}

#[tokio::test]
async fn wss_uses_the_platform_trust_store_like_rest() {
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support_stream/tls/ca.pem");
    // SAFETY: the only test of this binary, before any thread reads the environment.
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca) };
    let connect = |url: String| {
        BrokerageStream::builder(PlatformCredentials::new("client-1", "s3cret"))
            .url(url)
            .config(StreamConfig::default().max_attempts(0))
            .connect()
    };

    let trusted = tls_server("server.crt.der", "server.key.der").await;
    let stream = tokio::time::timeout(std::time::Duration::from_secs(10), connect(trusted))
        .await
        .expect("connect in time");
    assert!(
        stream.is_ok(),
        "a certificate from a CA in the platform store: {stream:?}"
    );

    let untrusted = tls_server("other.crt.der", "other.key.der").await;
    let error = tokio::time::timeout(std::time::Duration::from_secs(10), connect(untrusted))
        .await
        .expect("connect in time")
        .unwrap_err();
    match &error {
        StreamError::Connect(message) => {
            assert!(message.to_lowercase().contains("certificate"), "{message}")
        }
        other => panic!("expected a certificate error, got {other:?}"),
    }
}
