//! Mutual TLS: only members with a certificate from the cluster's CA, naming the id they claim,
//! can deliver a payload. Each stranger case has a control (a member with the same raw client)
//! so that a rejection is known to come from the check under test.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use rsl_net::tls::{replica_cert_file, replica_key_file, replica_server_name, CA_CERT_FILE};
use rsl_net::{Incoming, Security, Stats, TcpTransport, TlsIdentity, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::Receiver;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Certificates of the cluster (ids 1, 2, 3: 3 is signed by the CA but is not a peer of the
/// target) and of a foreign cluster with its own CA.
struct Certs {
    cluster: tempfile::TempDir,
    foreign: tempfile::TempDir,
}

fn certs() -> Certs {
    let cluster = tempfile::tempdir().unwrap();
    rsl_net::generate_cluster_certs(cluster.path(), CLUSTER, &[1, 2, 3]).unwrap();
    let foreign = tempfile::tempdir().unwrap();
    rsl_net::generate_cluster_certs(foreign.path(), "foreign", &[1, 2]).unwrap();
    Certs { cluster, foreign }
}

/// The target: replica 2 over TLS, whose only peer is replica 1.
fn target(certs: &Path) -> (TcpTransport, Receiver<Incoming>) {
    let (mut listeners, addrs) = bind(&[1, 2]);
    let config = config(2, &addrs, Security::MutualTls(TlsIdentity::load(certs, 2).unwrap()));
    TcpTransport::start_with_listener(config, listeners.remove(1)).unwrap()
}

/// The identity made of `ca` (trusted roots) and replica `id`'s certificate and key in `dir`.
fn identity(ca: &Path, dir: &Path, id: u32) -> TlsIdentity {
    TlsIdentity::from_pem_files(
        &ca.join(CA_CERT_FILE),
        &dir.join(replica_cert_file(id)),
        &dir.join(replica_key_file(id)),
    )
    .unwrap()
}

/// A raw TLS client: connects with `client`, claims `claimed_id` in its hello, sends one data
/// frame, and (if `close`) reads until the target closes the connection. Returns the stream
/// if the TLS handshake completed on the client's side.
async fn raw_client(
    client: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    claimed_id: u32,
    close: bool,
) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(replica_server_name(2)).unwrap();
    let Ok(mut tls) = TlsConnector::from(client).connect(name, tcp).await else {
        return None;
    };
    let bytes = [hello_frame(CLUSTER, claimed_id), data_frame(b"inject")].concat();
    let _ = tls.write_all(&bytes).await;
    let _ = tls.flush().await;
    if close {
        read_until_closed(&mut tls).await;
    }
    Some(tls)
}

async fn expect_rejected(
    transport: &TcpTransport,
    rx: &mut Receiver<Incoming>,
    client: Arc<rustls::ClientConfig>,
    claimed_id: u32,
) -> Stats {
    raw_client(client, transport.local_addr(), claimed_id, true).await;
    wait_rejections(transport, 1).await;
    assert!(rx.try_recv().is_err(), "a stranger delivered a payload");
    let stats = transport.stats();
    assert_eq!((stats.frames_received, stats.connects), (0, 0), "{stats:?}");
    stats
}

/// Control: the same raw client with replica 1's identity does deliver. Without it, the
/// rejections below could come from a broken raw client.
#[tokio::test]
async fn a_member_with_its_own_certificate_delivers() {
    let certs = certs();
    let (transport, mut rx) = target(certs.cluster.path());
    let client = TlsIdentity::load(certs.cluster.path(), 1).unwrap().client_config().unwrap();
    let _conn = raw_client(client, transport.local_addr(), 1, false).await.unwrap();
    let incoming = recv(&mut rx).await;
    assert_eq!((incoming.from, &incoming.payload[..]), (1, &b"inject"[..]));
    assert_eq!(transport.stats().rejected_frames + transport.stats().rejected_handshakes, 0);
}

#[tokio::test]
async fn a_client_without_a_certificate_is_rejected() {
    let certs = certs();
    let (transport, mut rx) = target(certs.cluster.path());
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(certs.cluster.path().join(CA_CERT_FILE)).unwrap();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stats = expect_rejected(&transport, &mut rx, Arc::new(client), 1).await;
    assert_eq!((stats.rejected_handshakes, stats.rejected_frames), (1, 0));
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_rejected() {
    let certs = certs();
    let (transport, mut rx) = target(certs.cluster.path());
    // Trusts the cluster's CA (so the client accepts the target) but presents a foreign cert.
    let client = identity(certs.cluster.path(), certs.foreign.path(), 1).client_config().unwrap();
    let stats = expect_rejected(&transport, &mut rx, client, 1).await;
    assert_eq!((stats.rejected_handshakes, stats.rejected_frames), (1, 0));
}

#[tokio::test]
async fn a_member_certificate_for_an_id_outside_the_peers_is_rejected() {
    let certs = certs();
    let (transport, mut rx) = target(certs.cluster.path());
    let client = TlsIdentity::load(certs.cluster.path(), 3).unwrap().client_config().unwrap();
    let stats = expect_rejected(&transport, &mut rx, client, 3).await;
    assert_eq!((stats.rejected_handshakes, stats.rejected_frames), (0, 1));
}

#[tokio::test]
async fn a_hello_claiming_another_replicas_id_is_rejected() {
    let certs = certs();
    let (transport, mut rx) = target(certs.cluster.path());
    // Replica 3's valid certificate, claiming to be replica 1 (a peer of the target).
    let client = TlsIdentity::load(certs.cluster.path(), 3).unwrap().client_config().unwrap();
    let stats = expect_rejected(&transport, &mut rx, client, 1).await;
    assert_eq!((stats.rejected_handshakes, stats.rejected_frames), (0, 1));
}

#[tokio::test]
async fn a_plaintext_client_is_rejected() {
    let certs = certs();
    let (transport, mut rx) = target(certs.cluster.path());
    let mut stream = TcpStream::connect(transport.local_addr()).await.unwrap();
    let bytes = [hello_frame(CLUSTER, 1), data_frame(b"inject")].concat();
    let _ = stream.write_all(&bytes).await;
    read_until_closed(&mut stream).await;
    wait_rejections(&transport, 1).await;
    assert!(rx.try_recv().is_err());
    assert_eq!(transport.stats().rejected_handshakes, 1);
}

/// The dialer checks the server too: replica 1 dials the address of replica 2, where an
/// impostor holding replica 3's (CA-signed) certificate listens. The handshake must fail and
/// replica 1 must never count the impostor as connected.
#[tokio::test]
async fn the_dialer_refuses_a_server_with_another_replicas_certificate() {
    let certs = certs();
    let impostor = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (listeners, mut addrs) = bind(&[1]);
    addrs.insert(2, impostor.local_addr().unwrap());
    let identity = TlsIdentity::load(certs.cluster.path(), 1).unwrap();
    let config = config(1, &addrs, Security::MutualTls(identity));
    let (one, _rx) =
        TcpTransport::start_with_listener(config, listeners.into_iter().next().unwrap()).unwrap();
    one.send(2, Bytes::from_static(b"secret")).unwrap();
    let server = TlsIdentity::load(certs.cluster.path(), 3).unwrap().server_config().unwrap();
    let acceptor = TlsAcceptor::from(server);
    for _ in 0..2 {
        let (tcp, _) = tokio::time::timeout(WAIT, impostor.accept()).await.unwrap().unwrap();
        let result = tokio::time::timeout(WAIT, acceptor.accept(tcp)).await.unwrap();
        assert!(result.is_err(), "replica 1 completed a handshake with an impostor");
    }
    let status = one.peer_status(2).unwrap();
    assert!(!status.connected);
    assert_eq!(status.queued_frames, 1, "the payload stays queued, never sent");
    assert_eq!(one.stats().frames_sent, 0);
}
