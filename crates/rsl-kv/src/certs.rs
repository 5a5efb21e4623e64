//! `rsl-kv certs`: writes a certificate authority, one certificate per replica and a client
//! certificate, in PEM, into a directory (rsl-net's generator, `rsl_net::generate_certs`).
//!
//! Replica `N`'s certificate names `replica-N.rsl` (what the replica transport checks against
//! the id a peer claims, and what a replica verifies when it relays an admin command to
//! another member's TLS client port), `localhost`, `127.0.0.1` and every `--host`; it allows
//! both server and client authentication, so one file serves the replica port (`tls.cert`)
//! and the client port (`kv.tls_cert_file`). Existing files are never replaced without
//! `--force`, and nothing is written if one of them exists.

use std::path::PathBuf;

use anyhow::{bail, Context};

/// The most replica certificates one `rsl-kv certs` writes.
pub const CERTS_REPLICAS_MAX: u32 = 64;

/// The names every replica certificate carries besides its replica name and `--host`.
const LOOPBACK_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// `rsl-kv certs`.
#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    /// The directory to write into (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Write certificates for replicas 1 to N (ids a replica added later will take included).
    #[arg(long, default_value_t = 3)]
    replicas: u32,
    /// A host name or IP address clients reach the replicas by, added to every replica
    /// certificate (repeat for more).
    #[arg(long = "host", value_name = "NAME")]
    hosts: Vec<String>,
    /// The cluster's name, in the CA's common name.
    #[arg(long, default_value = rsl::CLUSTER_NAME)]
    cluster: String,
    /// Replace files that exist.
    #[arg(long)]
    force: bool,
}

/// Runs `rsl-kv certs`: writes the files and prints them, each with the setting that reads it.
pub fn certs(args: CertsArgs) -> anyhow::Result<()> {
    if args.replicas == 0 || args.replicas > CERTS_REPLICAS_MAX {
        bail!("--replicas: {} is not between 1 and {CERTS_REPLICAS_MAX}", args.replicas);
    }
    let ids: Vec<u32> = (1..=args.replicas).collect();
    let names = rsl_net::cert_file_names(&ids);
    if !args.force {
        let existing: Vec<String> =
            names.iter().filter(|n| args.dir.join(n).exists()).cloned().collect();
        if !existing.is_empty() {
            bail!(
                "{} already holds {}: nothing written (--force replaces them)",
                args.dir.display(),
                existing.join(", ")
            );
        }
    }
    let mut hosts: Vec<String> = LOOPBACK_NAMES.iter().map(|h| h.to_string()).collect();
    hosts.extend(args.hosts.iter().filter(|h| !hosts.contains(h)).cloned().collect::<Vec<_>>());
    rsl_net::generate_certs(&args.dir, &args.cluster, &ids, &hosts)
        .with_context(|| format!("writing certificates into {}", args.dir.display()))?;
    for name in &names {
        println!("{}  {}", args.dir.join(name).display(), read_by(name));
    }
    Ok(())
}

/// Which setting reads the file `name`, in words.
fn read_by(name: &str) -> &'static str {
    use rsl_net::tls::{CA_CERT_FILE, CA_KEY_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE};
    match name {
        CA_CERT_FILE => "tls.ca, kv.tls_ca_cert_file; clients: --cacert",
        CA_KEY_FILE => "signs certificates only: keep it offline",
        CLIENT_CERT_FILE => "clients: --cert",
        CLIENT_KEY_FILE => "clients: --key",
        n if n.ends_with(".key.pem") => "tls.key, kv.tls_key_file (that replica's)",
        _ => "tls.cert, kv.tls_cert_file (that replica's)",
    }
}
