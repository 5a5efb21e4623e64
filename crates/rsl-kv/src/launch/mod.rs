//! Starting a cluster of `rsl-kv run` processes on loopback: what the local cluster command
//! (`rsl-kv cluster`), the benchmark script and the real-process tests share.
//!
//! [`Cluster::start`] generates a certificate authority and one certificate per replica
//! (`EXE certs`), writes one configuration per replica into a temporary directory, picks free
//! loopback ports, and starts each replica as a separate process (`EXE run --config FILE`)
//! with mutual TLS between replicas, and TLS on the client ports too if asked. Each replica prints one line when it listens and one line
//! every time its role, primary or ballot changes; the cluster reads those lines as events,
//! so waiting for a primary is waiting for an event, not polling.
//!
//! Children never outlive the cluster: dropping it kills them (SIGKILL), and on Linux each
//! child also asks the kernel to kill it if the thread that started it dies
//! (`PR_SET_PDEATHSIG`), which covers a parent killed with SIGKILL.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use rsl::config::{Member, TlsFiles};
use rsl::NodeConfig;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{ClientAddr, KvConfig, KvSection};
use crate::tls::{AuthClients, ClientTls};

pub mod replace;
mod report;
pub use report::{
    agreed_primary, forward_reports, parse_line, role_line, ReplicaReport, ReplicaView,
    LISTENING_LINE_PREFIX, ROLE_LINE_PREFIX,
};

/// How many times [`Cluster::start`] tries to start a cluster.
pub const START_TRIES_MAX: u32 = 3;

/// How long a replica process may take to start listening.
pub const START_WAIT_MAX: Duration = Duration::from_secs(20);

/// The highest replica id of a local cluster, replicas added later included (certificates
/// are made for every id up to it at start).
pub const REPLICA_IDS_MAX: u32 = 9;

/// How a local cluster is made.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Replicas (3, 5 or 7).
    pub replicas: u32,
    /// The client password, if any.
    pub requirepass: Option<String>,
    /// Extra TOML appended to every replica's `[consensus]` table (`key = value` lines).
    pub consensus: String,
    /// Extra TOML appended to every replica's `[storage]` table (`key = value` lines), such
    /// as a small `checkpoint_interval_slots` and `log_kept_slots`.
    pub storage: String,
    /// Whether the log is made durable with fdatasync.
    pub fsync: bool,
    /// How the replicas serve reads.
    pub reads: crate::config::Reads,
    /// TLS on the client ports, and whether clients must present a certificate; `None` for
    /// plaintext client ports.
    pub client_tls: Option<AuthClients>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            replicas: 3,
            requirepass: None,
            consensus: String::new(),
            storage: String::new(),
            fsync: true,
            reads: crate::config::Reads::Linearizable,
            client_tls: None,
        }
    }
}

/// One replica's addresses and files.
#[derive(Debug, Clone)]
pub struct ReplicaFiles {
    /// Its id (1-based).
    pub id: u32,
    /// The replica-to-replica (TLS) address.
    pub peer_addr: SocketAddr,
    /// The Redis client address.
    pub client_addr: SocketAddr,
    /// The Prometheus metrics address.
    pub metrics_addr: SocketAddr,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its stderr log.
    pub log: PathBuf,
}

/// A running local cluster of replica processes.
#[derive(Debug)]
pub struct Cluster {
    exe: PathBuf,
    dir: tempfile::TempDir,
    options: ClusterOptions,
    replicas: Vec<ReplicaFiles>,
    children: BTreeMap<u32, Child>,
    generations: BTreeMap<u32, u32>,
    paused: BTreeSet<u32>,
    views: BTreeMap<u32, ReplicaView>,
    /// Replicas whose current process has printed its listening line.
    listening: BTreeSet<u32>,
    /// Replicas whose current process exited on its own.
    exited: BTreeSet<u32>,
    reports_tx: mpsc::UnboundedSender<ReplicaReport>,
    reports: mpsc::UnboundedReceiver<ReplicaReport>,
}

/// Picks `n` distinct loopback ports that are free now, below the kernel's ephemeral range
/// ([`rsl_net::free_loopback_ports`]).
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    rsl_net::free_loopback_ports(n)
}

impl Cluster {
    /// Writes certificates and configurations into a new temporary directory and starts
    /// every replica with `exe run --config FILE`; returns once all of them listen. The free
    /// ports are picked before the replicas bind them, so another process may take one in
    /// between: a replica that then fails to start makes a fresh try, at most
    /// [`START_TRIES_MAX`] in all.
    pub async fn start(exe: &Path, options: ClusterOptions) -> anyhow::Result<Cluster> {
        let mut tries = 1;
        loop {
            match Cluster::try_start(exe, options.clone()).await {
                Ok(cluster) => return Ok(cluster),
                Err(e) if tries < START_TRIES_MAX => {
                    tracing::warn!(error = %e, "the local cluster did not start; trying again");
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_start(exe: &Path, options: ClusterOptions) -> anyhow::Result<Cluster> {
        let n = options.replicas;
        if n == 0 || n > 9 {
            bail!("a local cluster has 1 to 9 replicas");
        }
        // RSL_KV_KEEP_FILES=1 keeps the directory (data, logs, certificates) for inspection.
        let keep = std::env::var_os("RSL_KV_KEEP_FILES").is_some_and(|v| v == "1");
        let dir =
            tempfile::Builder::new().prefix("rsl-kv-cluster-").disable_cleanup(keep).tempdir()?;
        let ids: Vec<u32> = (1..=n).collect();
        let certs = dir.path().join("certs");
        // Certificates for every id a replica added later may take (`add_joining`), made by
        // the binary's own `certs` command, so that every cluster started here tests it.
        let made = Command::new(exe)
            .arg("certs")
            .arg("--dir")
            .arg(&certs)
            .args(["--replicas", &REPLICA_IDS_MAX.to_string()])
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("starting {} certs", exe.display()))?;
        if !made.status.success() {
            bail!("{} certs failed: {}", exe.display(), String::from_utf8_lossy(&made.stderr));
        }
        std::fs::create_dir_all(dir.path().join("logs"))?;
        let ports = free_ports(3 * n as usize)?;
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let replicas: Vec<ReplicaFiles> = ids
            .iter()
            .map(|&id| {
                let i = 3 * (id - 1) as usize;
                ReplicaFiles {
                    id,
                    peer_addr: addr(ports[i]),
                    client_addr: addr(ports[i + 1]),
                    metrics_addr: addr(ports[i + 2]),
                    config: dir.path().join(format!("replica-{id}.toml")),
                    log: dir.path().join("logs").join(format!("replica-{id}.log")),
                }
            })
            .collect();
        for r in &replicas {
            let config = replica_config(dir.path(), &replicas, r, &options)?;
            std::fs::write(&r.config, config.to_toml())?;
        }
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let mut cluster = Cluster {
            exe: exe.to_path_buf(),
            dir,
            options,
            replicas,
            children: BTreeMap::new(),
            generations: BTreeMap::new(),
            paused: BTreeSet::new(),
            views: BTreeMap::new(),
            listening: BTreeSet::new(),
            exited: BTreeSet::new(),
            reports_tx,
            reports,
        };
        for id in ids.clone() {
            cluster.spawn(id)?;
        }
        for id in ids {
            cluster.wait_listening(id).await?;
        }
        Ok(cluster)
    }

    /// The temporary directory holding certificates, configurations, data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The executable the replicas run (`rsl-kv`).
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The cluster's certificate directory (what `rsl-kv certs` wrote).
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// How a client reaches the TLS client ports (the CA, and the client certificate), if
    /// they speak TLS.
    pub fn client_tls(&self) -> anyhow::Result<Option<ClientTls>> {
        if self.options.client_tls.is_none() {
            return Ok(None);
        }
        let certs = self.certs_dir();
        let (cert, key) = (certs.join("client.pem"), certs.join("client.key.pem"));
        let names = crate::tls::FLAG_NAMES;
        Ok(Some(ClientTls::new(&certs.join("ca.pem"), Some((&cert, &key)), None, names)?))
    }

    /// The options the cluster was made with.
    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// Every replica's addresses and files.
    pub fn replicas(&self) -> &[ReplicaFiles] {
        &self.replicas
    }

    /// One replica's addresses and files.
    pub fn replica(&self, id: u32) -> &ReplicaFiles {
        &self.replicas[(id - 1) as usize]
    }

    /// The ids of the replicas whose process runs (paused ones included).
    pub fn running(&self) -> Vec<u32> {
        self.children.keys().copied().collect()
    }

    /// What replica `id` last reported, if it runs.
    pub fn view(&self, id: u32) -> Option<&ReplicaView> {
        self.views.get(&id)
    }

    /// The process id of replica `id`, if it runs.
    pub fn pid(&self, id: u32) -> Option<u32> {
        self.children.get(&id).and_then(Child::id)
    }

    fn spawn(&mut self, id: u32) -> anyhow::Result<()> {
        assert!(!self.children.contains_key(&id), "replica {id} already runs");
        let files = self.replica(id).clone();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&files.log)?;
        let mut command = Command::new(&self.exe);
        command
            .arg("run")
            .arg("--config")
            .arg(&files.config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        #[cfg(target_os = "linux")]
        // SAFETY: the closure runs in the child between fork and exec and only calls prctl,
        // which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child =
            command.spawn().with_context(|| format!("starting {}", self.exe.display()))?;
        let generation = self.generations.get(&id).map_or(1, |g| g + 1);
        self.generations.insert(id, generation);
        self.listening.remove(&id);
        self.exited.remove(&id);
        let stdout = child.stdout.take().expect("stdout is piped");
        forward_reports(stdout, id, generation, self.reports_tx.clone());
        self.children.insert(id, child);
        Ok(())
    }

    /// Takes the next report and applies it, or returns `None` at `deadline`.
    async fn next_event(&mut self, deadline: Instant) -> Option<()> {
        let event = tokio::time::timeout_at(deadline, self.reports.recv()).await.ok()??;
        let current = |cluster: &Cluster, id: u32, generation: u32| {
            cluster.generations.get(&id) == Some(&generation) && cluster.children.contains_key(&id)
        };
        match event {
            ReplicaReport::Listening { id, generation } if current(self, id, generation) => {
                self.listening.insert(id);
            }
            ReplicaReport::Role { id, generation, view } if current(self, id, generation) => {
                self.views.insert(id, view);
            }
            ReplicaReport::Exited { id, generation } if current(self, id, generation) => {
                self.views.remove(&id);
                self.listening.remove(&id);
                self.exited.insert(id);
            }
            _ => {}
        }
        Some(())
    }

    async fn wait_listening(&mut self, id: u32) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_WAIT_MAX;
        loop {
            if self.listening.contains(&id) {
                return Ok(());
            }
            if self.exited.contains(&id) {
                let log = std::fs::read_to_string(&self.replica(id).log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!("replica {id} exited at start; its log ends:\n{}", tail.join("\n"));
            }
            if self.next_event(deadline).await.is_none() {
                bail!("replica {id} did not start within {START_WAIT_MAX:?}");
            }
        }
    }

    /// The primary that a majority of the running, unpaused replicas report, if any.
    pub fn agreed_primary(&self) -> Option<u32> {
        let live: Vec<u32> =
            self.children.keys().copied().filter(|id| !self.paused.contains(id)).collect();
        agreed_primary(&live, &self.views, self.options.replicas as usize)
    }

    /// Waits until a majority of running, unpaused replicas agree on a primary other than
    /// `not` (if given); returns it.
    pub async fn wait_primary(
        &mut self,
        not: Option<u32>,
        within: Duration,
    ) -> anyhow::Result<u32> {
        let deadline = Instant::now() + within;
        loop {
            match self.agreed_primary() {
                Some(p) if Some(p) != not => return Ok(p),
                _ => {}
            }
            if self.next_event(deadline).await.is_none() {
                bail!("no primary within {within:?}; views: {:?}", self.views);
            }
        }
    }

    /// Waits until replica `id` reports a view that satisfies `check`.
    pub async fn wait_view(
        &mut self,
        id: u32,
        within: Duration,
        check: impl Fn(&ReplicaView) -> bool,
    ) -> anyhow::Result<ReplicaView> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(view) = self.views.get(&id).filter(|v| check(v)) {
                return Ok(view.clone());
            }
            if self.next_event(deadline).await.is_none() {
                bail!(
                    "replica {id} did not reach the view within {within:?}; views: {:?}",
                    self.views
                );
            }
        }
    }

    /// Replica `id`'s data directory.
    pub fn data_dir(&self, id: u32) -> PathBuf {
        self.dir.path().join(format!("data-{id}"))
    }

    /// Waits until replica `id`'s process exits on its own; returns its exit status.
    pub async fn wait_exit(
        &mut self,
        id: u32,
        within: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if self.exited.contains(&id) {
                let mut child = self.children.remove(&id).expect("an exited replica was running");
                return Ok(child.wait().await?);
            }
            if self.next_event(deadline).await.is_none() {
                bail!("replica {id} did not exit within {within:?}");
            }
        }
    }

    /// Kills replica `id` with SIGKILL and reaps it.
    pub async fn kill(&mut self, id: u32) -> anyhow::Result<()> {
        let mut child =
            self.children.remove(&id).ok_or_else(|| anyhow!("replica {id} is not running"))?;
        self.views.remove(&id);
        self.listening.remove(&id);
        self.paused.remove(&id);
        child.start_kill()?;
        child.wait().await?;
        Ok(())
    }

    /// Sends `signal` (such as `libc::SIGSTOP`) to replica `id`.
    pub fn signal(&mut self, id: u32, signal: i32) -> anyhow::Result<()> {
        let pid = self.pid(id).ok_or_else(|| anyhow!("replica {id} is not running"))?;
        let pid = i32::try_from(pid)?;
        // SAFETY: kill(2) with a pid of our own child has no memory-safety requirements.
        if unsafe { libc::kill(pid, signal) } != 0 {
            bail!("signal {signal} to replica {id}: {}", std::io::Error::last_os_error());
        }
        if signal == libc::SIGSTOP {
            self.paused.insert(id);
        } else if signal == libc::SIGCONT {
            self.paused.remove(&id);
        }
        Ok(())
    }

    /// Starts a new replica (the next id) that joins the running cluster: its configuration
    /// has `join = true` and names `members` (the current members, which it lets connect to
    /// it) and their client addresses; waits until it listens. It is no member until added
    /// (`rsl-kv member add`). Returns its files.
    pub async fn add_joining(&mut self, members: &[u32]) -> anyhow::Result<ReplicaFiles> {
        let id = self.replicas.len() as u32 + 1;
        if id > REPLICA_IDS_MAX {
            bail!("a local cluster has at most {REPLICA_IDS_MAX} replica ids");
        }
        let ports = free_ports(3)?;
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let files = ReplicaFiles {
            id,
            peer_addr: addr(ports[0]),
            client_addr: addr(ports[1]),
            metrics_addr: addr(ports[2]),
            config: self.dir.path().join(format!("replica-{id}.toml")),
            log: self.dir.path().join("logs").join(format!("replica-{id}.log")),
        };
        let mut known: Vec<ReplicaFiles> =
            members.iter().map(|m| self.replica(*m).clone()).collect();
        known.push(files.clone());
        let mut config = replica_config(self.dir.path(), &known, &files, &self.options)?;
        config.node.members.retain(|m| m.id != id);
        config.node.join = true;
        config.node.listen = Some(files.peer_addr);
        config.validate()?;
        std::fs::write(&files.config, config.to_toml())?;
        self.replicas.push(files.clone());
        self.spawn(id)?;
        self.wait_listening(id).await?;
        Ok(files)
    }

    /// Waits until replica `id`'s process exits by itself (a removed replica does), and
    /// reaps it.
    pub async fn wait_exited(&mut self, id: u32, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while !self.exited.contains(&id) {
            if self.next_event(deadline).await.is_none() {
                bail!("replica {id} did not exit within {within:?}");
            }
        }
        if let Some(mut child) = self.children.remove(&id) {
            child.wait().await?;
        }
        Ok(())
    }

    /// Starts replica `id` again (from its data directory) and waits until it listens.
    pub async fn restart(&mut self, id: u32) -> anyhow::Result<()> {
        self.spawn(id)?;
        self.wait_listening(id).await
    }

    /// Kills every replica and reaps them.
    pub async fn stop(&mut self) {
        for id in self.running() {
            let _ = self.kill(id).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.start_kill();
        }
    }
}

fn replica_config(
    dir: &Path,
    replicas: &[ReplicaFiles],
    me: &ReplicaFiles,
    options: &ClusterOptions,
) -> anyhow::Result<KvConfig> {
    let certs = dir.join("certs");
    let text = format!(
        "id = {}\ndata_dir = {:?}\nmembers = []\n[consensus]\n{}\n[storage]\nfsync = {}\n{}\n",
        me.id,
        dir.join(format!("data-{}", me.id)),
        options.consensus,
        options.fsync,
        options.storage,
    );
    let mut node: NodeConfig = toml::from_str(&text).context("the consensus options")?;
    node.members = replicas.iter().map(|r| Member { id: r.id, addr: r.peer_addr }).collect();
    node.metrics_addr = Some(me.metrics_addr);
    node.tls = Some(TlsFiles {
        ca: certs.join("ca.pem"),
        cert: certs.join(format!("replica-{}.pem", me.id)),
        key: certs.join(format!("replica-{}.key.pem", me.id)),
    });
    let kv = KvSection {
        listen: None,
        clients: replicas.iter().map(|r| ClientAddr { id: r.id, addr: r.client_addr }).collect(),
        requirepass: options.requirepass.clone(),
        tick_ms: 100,
        reads: options.reads,
        tls_cert_file: options.client_tls.map(|_| certs.join(format!("replica-{}.pem", me.id))),
        tls_key_file: options.client_tls.map(|_| certs.join(format!("replica-{}.key.pem", me.id))),
        tls_ca_cert_file: options.client_tls.map(|_| certs.join("ca.pem")),
        tls_auth_clients: options.client_tls.unwrap_or_default(),
    };
    let config = KvConfig { node, kv };
    config.validate()?;
    Ok(config)
}
