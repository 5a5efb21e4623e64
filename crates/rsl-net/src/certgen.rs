//! Certificate generation for a cluster (feature `certgen`): a CA and one certificate per
//! replica, written as PEM in the layout [`TlsIdentity::load`](crate::TlsIdentity::load) reads.
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
    CA_CERT_FILE, CA_KEY_FILE,
};
use crate::ReplicaId;

/// Generates a cluster's certificates and writes them as PEM into `dir` (created if missing):
/// [`CA_CERT_FILE`], [`CA_KEY_FILE`], and for each id [`replica_cert_file`] and
/// [`replica_key_file`]. Keys are written with mode 0600 on Unix. Existing files are replaced.
pub fn generate_cluster_certs(
    dir: &Path,
    cluster: &str,
    ids: &[ReplicaId],
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
        let mut params = CertificateParams::new(vec![replica_server_name(id)])?;
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
