//! Certificate generation for a cluster (feature `certgen`): a CA, one certificate per
//! replica and one client certificate, written as PEM in the layout
//! [`TlsIdentity::load`](crate::TlsIdentity::load) reads.
//!
//! A replica's certificate names it (`replica-<id>.rsl`, which the transport checks against
//! the id a peer claims) and any extra host names or IP addresses its clients reach it by, so
//! the same certificate serves the replica port and a TLS client port. The client
//! certificate names no replica, so it opens a client port that requires client
//! certificates but never the replica port.
//!
//! A production deployment usually brings certificates from its own CA; this module serves the
//! local cluster command, tests and benchmarks, so the transport itself does not depend on a
//! certificate generator.

use std::fs;
use std::io::Write;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::tls::{
    cert_names_replica, replica_cert_file, replica_key_file, replica_server_name, TlsError,
    CA_CERT_FILE, CA_KEY_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE,
};
use crate::ReplicaId;

/// Generates a cluster's certificates and writes them as PEM into `dir` (created if missing):
/// [`CA_CERT_FILE`], [`CA_KEY_FILE`], for each id [`replica_cert_file`] and
/// [`replica_key_file`], and [`CLIENT_CERT_FILE`] and [`CLIENT_KEY_FILE`]. Replica
/// certificates name only their replica. Keys are written with mode 0600 on Unix. Existing
/// files are replaced.
pub fn generate_cluster_certs(
    dir: &Path,
    cluster: &str,
    ids: &[ReplicaId],
) -> Result<(), TlsError> {
    generate_certs(dir, cluster, ids, &[])
}

/// The names of the files [`generate_certs`] writes for `ids`, in the order it writes them.
pub fn cert_file_names(ids: &[ReplicaId]) -> Vec<String> {
    let mut names = vec![CA_CERT_FILE.to_string(), CA_KEY_FILE.to_string()];
    for &id in ids {
        names.push(replica_cert_file(id));
        names.push(replica_key_file(id));
    }
    names.push(CLIENT_CERT_FILE.to_string());
    names.push(CLIENT_KEY_FILE.to_string());
    names
}

/// As [`generate_cluster_certs`], and each replica certificate also names every entry of
/// `hosts` (a DNS name, or an IP address, which becomes an IP address name), so that clients
/// that verify the server's name reach a replica by any of them.
pub fn generate_certs(
    dir: &Path,
    cluster: &str,
    ids: &[ReplicaId],
    hosts: &[String],
) -> Result<(), TlsError> {
    fs::create_dir_all(dir).map_err(|source| TlsError::Io { path: dir.to_owned(), source })?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, format!("rsl cluster {cluster} CA"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    write_file(&dir.join(CA_CERT_FILE), ca_cert.pem().as_bytes(), false)?;
    write_file(&dir.join(CA_KEY_FILE), ca_key.serialize_pem().as_bytes(), true)?;
    for &id in ids {
        let mut names = vec![replica_server_name(id)];
        names.extend(hosts.iter().cloned());
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, replica_server_name(id));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
        assert!(cert_names_replica(cert.der(), id));
        write_file(&dir.join(replica_cert_file(id)), cert.pem().as_bytes(), false)?;
        write_file(&dir.join(replica_key_file(id)), key.serialize_pem().as_bytes(), true)?;
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, format!("rsl cluster {cluster} client"));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
    assert!(ids.iter().all(|&id| !cert_names_replica(cert.der(), id)));
    write_file(&dir.join(CLIENT_CERT_FILE), cert.pem().as_bytes(), false)?;
    write_file(&dir.join(CLIENT_KEY_FILE), key.serialize_pem().as_bytes(), true)?;
    Ok(())
}

fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), TlsError> {
    let io_error = |source| TlsError::Io { path: path.to_owned(), source };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(io_error)?;
    file.write_all(contents).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}
