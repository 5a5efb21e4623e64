//! The replicas: `rsl-kv run` processes, each started inside its own network namespace, on
//! its own small filesystem, with mutual TLS between them.
//!
//! Each replica prints a line when it listens and one every time its role, primary or ballot
//! changes (`rsl_kv::launch`'s format); the cluster reads them as events, so that the nemesis
//! knows which replica is primary without asking, and keeps the changes with their time for
//! the report. A replica whose process ends by itself is recorded as an unexpected exit.
//!
//! Children never outlive the run: each asks the kernel to kill it when the thread that
//! started it dies (`PR_SET_PDEATHSIG`), the cluster kills them when dropped, and the
//! namespaces' teardown kills anything left inside them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rsl_kv::admin::StatusReport;
use rsl_kv::client::Client;
use rsl_kv::launch::{agreed_primary, forward_reports, ReplicaReport, ReplicaView};
use rsl_kv::resp::Reply;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::disk::Disk;
use crate::netns::Net;

/// The peer (replica-to-replica) port in every namespace.
pub const PEER_PORT: u16 = 7001;
/// The client (Redis) port.
pub const CLIENT_PORT: u16 = 6379;
/// The metrics port.
pub const METRICS_PORT: u16 = 9101;

/// How long a replica may take to listen after it is started.
pub const START_WAIT_MAX: Duration = Duration::from_secs(30);

/// How long a replica may take to stop after SIGTERM before it is killed.
pub const STOP_WAIT_MAX: Duration = Duration::from_secs(10);

/// The `RSL.STATUS` fields the suite reads, by their names since rsl-kv's status and INFO's
/// `# Rsl` section share them, with the names rsl-kv used before.
const STATUS_FIELDS: [(&str, &str); 6] = [
    ("rsl_replica_id", "id"),
    ("rsl_role", "role"),
    ("rsl_primary", "primary"),
    ("rsl_ballot", "ballot"),
    ("rsl_committed_slot", "committed"),
    ("rsl_executed_slot", "executed"),
];

/// Parses an `RSL.STATUS` reply; a field under its earlier name is also given its current
/// name, so that the suite measures a binary from before the rename as well.
pub fn parse_status(text: &str) -> StatusReport {
    let mut status = StatusReport::parse(text);
    for (name, old) in STATUS_FIELDS {
        if let Some(value) = status.fields.get(old).cloned() {
            status.fields.entry(name.to_string()).or_insert(value);
        }
    }
    status
}

/// The run's clock: microseconds since the run started, shared by clients and nemesis.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    /// Microseconds since the start.
    pub fn now_us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

/// How the replicas are configured.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Replicas (3).
    pub replicas: u32,
    /// `storage.checkpoint_interval_slots`.
    pub checkpoint_interval_slots: u64,
    /// `storage.log_kept_slots`.
    pub log_kept_slots: u64,
}

/// One replica's addresses and files.
#[derive(Debug, Clone)]
pub struct ReplicaFiles {
    /// Its id.
    pub id: u32,
    /// Replica-to-replica address.
    pub peer: SocketAddr,
    /// Redis client address.
    pub client: SocketAddr,
    /// Configuration file.
    pub config: PathBuf,
    /// Its stderr.
    pub log: PathBuf,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its namespace, for `setns`.
    pub namespace: PathBuf,
}

/// A replica process that ended although nobody stopped it.
#[derive(Debug, Clone)]
pub struct UnexpectedExit {
    /// When it was noticed.
    pub at_us: u64,
    /// The replica.
    pub id: u32,
    /// Its exit status.
    pub status: String,
    /// The last lines of its log.
    pub log_tail: String,
}

/// The running replicas.
#[derive(Debug)]
pub struct Cluster {
    exe: PathBuf,
    options: ClusterOptions,
    files: Vec<ReplicaFiles>,
    certs: PathBuf,
    children: BTreeMap<u32, Child>,
    generations: BTreeMap<u32, u32>,
    paused: BTreeSet<u32>,
    views: BTreeMap<u32, ReplicaView>,
    listening: BTreeSet<u32>,
    exited: BTreeSet<u32>,
    reports_tx: mpsc::UnboundedSender<ReplicaReport>,
    reports: mpsc::UnboundedReceiver<ReplicaReport>,
    clock: Clock,
    /// Every role line with its time: (µs, replica, view).
    pub role_changes: Vec<(u64, u32, ReplicaView)>,
    /// Processes that ended by themselves.
    pub unexpected_exits: Vec<UnexpectedExit>,
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let last: Vec<&str> = text.lines().rev().take(lines).collect();
    last.into_iter().rev().collect::<Vec<_>>().join("\n")
}

impl Cluster {
    /// Writes certificates and configurations into `dir` for replicas in `net`'s namespaces
    /// with data on `disks`; starts nothing.
    pub fn new(
        exe: &Path,
        dir: &Path,
        net: &Net,
        disks: &[Disk],
        options: ClusterOptions,
        clock: Clock,
    ) -> anyhow::Result<Cluster> {
        let ids: Vec<u32> = (1..=options.replicas).collect();
        let certs = dir.join("certs");
        rsl_net::generate_cluster_certs(&certs, rsl::CLUSTER_NAME, &ids)
            .map_err(|e| anyhow!("generating certificates: {e}"))?;
        std::fs::create_dir_all(dir.join("logs"))?;
        let files = ids
            .iter()
            .map(|&id| {
                let ip = IpAddr::V4(net.ip(id));
                ReplicaFiles {
                    id,
                    peer: SocketAddr::new(ip, PEER_PORT),
                    client: SocketAddr::new(ip, CLIENT_PORT),
                    config: dir.join(format!("replica-{id}.toml")),
                    log: dir.join("logs").join(format!("replica-{id}.log")),
                    data_dir: disks[(id - 1) as usize].data_dir(),
                    namespace: net.namespace_file(id),
                }
            })
            .collect();
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let cluster = Cluster {
            exe: exe.to_path_buf(),
            options,
            files,
            certs,
            children: BTreeMap::new(),
            generations: BTreeMap::new(),
            paused: BTreeSet::new(),
            views: BTreeMap::new(),
            listening: BTreeSet::new(),
            exited: BTreeSet::new(),
            reports_tx,
            reports,
            clock,
            role_changes: Vec::new(),
            unexpected_exits: Vec::new(),
        };
        cluster.write_configs(false)?;
        Ok(cluster)
    }

    /// Writes every replica's configuration. With `final_check`, each serves reads from its
    /// own state (`kv.reads = "local"`) and the primary proposes no clock ticks
    /// (`kv.tick_ms = 0`), so that with the clients stopped the log comes to rest and every
    /// replica can be read at the same slot.
    pub fn write_configs(&self, final_check: bool) -> anyhow::Result<()> {
        for me in &self.files {
            let text = self.config_text(me, final_check);
            rsl_kv::KvConfig::from_toml(&text)
                .with_context(|| format!("the configuration of replica {}", me.id))?;
            std::fs::write(&me.config, text)?;
        }
        Ok(())
    }

    fn config_text(&self, me: &ReplicaFiles, final_check: bool) -> String {
        let list = |addr: fn(&ReplicaFiles) -> SocketAddr| -> String {
            let items: Vec<String> = self
                .files
                .iter()
                .map(|f| format!("{{ id = {}, addr = \"{}\" }}", f.id, addr(f)))
                .collect();
            format!("[{}]", items.join(", "))
        };
        let cert = |name: String| self.certs.join(name).display().to_string();
        format!(
            "id = {id}\ndata_dir = {data:?}\nmembers = {members}\nmetrics_addr = \"{ip}:{METRICS_PORT}\"\n\
             tls = {{ ca = {ca:?}, cert = {cert:?}, key = {key:?} }}\n\n\
             [storage]\nfsync = true\ncheckpoint_interval_slots = {interval}\nlog_kept_slots = {kept}\n\n\
             [kv]\nclients = {clients}\nreads = \"{reads}\"\ntick_ms = {tick_ms}\n",
            id = me.id,
            data = me.data_dir.display().to_string(),
            members = list(|f| f.peer),
            ip = me.peer.ip(),
            ca = cert("ca.pem".into()),
            cert = cert(format!("replica-{}.pem", me.id)),
            key = cert(format!("replica-{}.key.pem", me.id)),
            interval = self.options.checkpoint_interval_slots,
            kept = self.options.log_kept_slots,
            clients = list(|f| f.client),
            reads = if final_check { "local" } else { "linearizable" },
            tick_ms = if final_check { 0 } else { 100 },
        )
    }

    /// Every replica's files.
    pub fn files(&self) -> &[ReplicaFiles] {
        &self.files
    }

    /// Every replica's id.
    pub fn ids(&self) -> Vec<u32> {
        self.files.iter().map(|f| f.id).collect()
    }

    /// Replica `id`'s client address.
    pub fn client_addr(&self, id: u32) -> SocketAddr {
        self.files[(id - 1) as usize].client
    }

    /// Whether replica `id`'s process runs (paused or not).
    pub fn is_running(&self, id: u32) -> bool {
        self.children.contains_key(&id)
    }

    /// Whether replica `id` is stopped with SIGSTOP.
    pub fn is_paused(&self, id: u32) -> bool {
        self.paused.contains(&id)
    }

    /// Starts replica `id` in its namespace and waits until it listens.
    pub async fn start(&mut self, id: u32) -> anyhow::Result<()> {
        self.spawn(id)?;
        self.wait_listening(id).await
    }

    fn spawn(&mut self, id: u32) -> anyhow::Result<()> {
        assert!(!self.children.contains_key(&id), "replica {id} already runs");
        let files = self.files[(id - 1) as usize].clone();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&files.log)?;
        let namespace = std::fs::File::open(&files.namespace)
            .with_context(|| format!("opening {}", files.namespace.display()))?;
        let ns_fd = namespace.as_raw_fd();
        let mut command = Command::new(&self.exe);
        command
            .arg("run")
            .arg("--config")
            .arg(&files.config)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            // The logs are files: no colour codes in them.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        // SAFETY: the closure runs in the child between fork and exec and only makes system
        // calls (setns, prctl), which are async-signal-safe; `ns_fd` stays open until spawn
        // returns because `namespace` lives past it.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child =
            command.spawn().with_context(|| format!("starting {}", self.exe.display()))?;
        drop(namespace);
        let generation = self.generations.get(&id).map_or(1, |g| g + 1);
        self.generations.insert(id, generation);
        self.listening.remove(&id);
        self.exited.remove(&id);
        self.paused.remove(&id);
        let stdout = child.stdout.take().expect("stdout is piped");
        forward_reports(stdout, id, generation, self.reports_tx.clone());
        self.children.insert(id, child);
        Ok(())
    }

    fn apply(&mut self, event: ReplicaReport) {
        let current = |c: &Cluster, id: u32, generation: u32| {
            c.generations.get(&id) == Some(&generation) && c.children.contains_key(&id)
        };
        match event {
            ReplicaReport::Listening { id, generation } if current(self, id, generation) => {
                self.listening.insert(id);
            }
            ReplicaReport::Role { id, generation, view } if current(self, id, generation) => {
                self.role_changes.push((self.clock.now_us(), id, view.clone()));
                self.views.insert(id, view);
            }
            ReplicaReport::Exited { id, generation } if current(self, id, generation) => {
                let mut child = self.children.remove(&id).expect("current");
                let status = match child.try_wait() {
                    Ok(Some(status)) => status.to_string(),
                    _ => "its output closed".to_string(),
                };
                let log_tail = tail(&self.files[(id - 1) as usize].log, 5);
                let at_us = self.clock.now_us();
                self.unexpected_exits.push(UnexpectedExit { at_us, id, status, log_tail });
                self.views.remove(&id);
                self.listening.remove(&id);
                self.paused.remove(&id);
                self.exited.insert(id);
            }
            _ => {}
        }
    }

    /// Applies the events that have arrived, without waiting.
    pub fn pump(&mut self) {
        while let Ok(event) = self.reports.try_recv() {
            self.apply(event);
        }
    }

    /// Applies events as they arrive for `duration` (the nemesis's way of waiting).
    pub async fn settle(&mut self, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, self.reports.recv()).await {
            self.apply(event);
        }
    }

    async fn next_event(&mut self, deadline: tokio::time::Instant) -> bool {
        match tokio::time::timeout_at(deadline, self.reports.recv()).await {
            Ok(Some(event)) => {
                self.apply(event);
                true
            }
            _ => false,
        }
    }

    async fn wait_listening(&mut self, id: u32) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + START_WAIT_MAX;
        loop {
            if self.listening.contains(&id) {
                return Ok(());
            }
            if self.exited.contains(&id) {
                let log = tail(&self.files[(id - 1) as usize].log, 8);
                bail!("replica {id} exited at start; its log ends:\n{log}");
            }
            if !self.next_event(deadline).await {
                bail!("replica {id} did not listen within {START_WAIT_MAX:?}");
            }
        }
    }

    /// The primary a majority of the running, unpaused replicas report, if any.
    pub fn agreed_primary(&self) -> Option<u32> {
        let live: Vec<u32> =
            self.children.keys().copied().filter(|id| !self.paused.contains(id)).collect();
        agreed_primary(&live, &self.views, self.options.replicas as usize)
    }

    /// A running replica that says it is primary (the newest claim), if any: the one the
    /// nemesis targets when it aims at the primary.
    pub fn claimed_primary(&self) -> Option<u32> {
        self.agreed_primary().or_else(|| {
            self.role_changes
                .iter()
                .rev()
                .find(|(_, id, v)| v.role == "primary" && self.children.contains_key(id))
                .map(|(_, id, _)| *id)
        })
    }

    /// The primary as the replicas say it now (`RSL.STATUS` of every running, unpaused
    /// replica: the one that says it is primary at the highest ballot), else the newest
    /// claim seen in the role lines.
    pub async fn ask_primary(&mut self) -> Option<u32> {
        self.pump();
        let mut best: Option<((u64, u64), u32)> = None;
        for id in self.ids().into_iter().filter(|&id| self.is_running(id) && !self.is_paused(id)) {
            let Some(status) = self.status(id, Duration::from_millis(500)).await else { continue };
            if status.get("rsl_role") != "primary" {
                continue;
            }
            let ballot = status
                .get("rsl_ballot")
                .split_once('.')
                .and_then(|(r, i)| Some((r.parse::<u64>().ok()?, i.parse::<u64>().ok()?)));
            let ballot = ballot.unwrap_or((0, 0));
            if best.is_none_or(|(b, _)| ballot > b) {
                best = Some((ballot, id));
            }
        }
        best.map(|(_, id)| id).or_else(|| self.claimed_primary())
    }

    /// Waits until a majority agrees on a primary; returns it.
    pub async fn wait_primary(&mut self, within: Duration) -> anyhow::Result<u32> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(p) = self.agreed_primary() {
                return Ok(p);
            }
            if !self.next_event(deadline).await {
                bail!("no primary within {within:?}; views: {:?}", self.views);
            }
        }
    }

    /// Kills replica `id` with SIGKILL and reaps it.
    pub async fn kill(&mut self, id: u32) -> anyhow::Result<()> {
        let mut child = self.take(id)?;
        child.start_kill()?;
        child.wait().await?;
        Ok(())
    }

    fn take(&mut self, id: u32) -> anyhow::Result<Child> {
        let child =
            self.children.remove(&id).ok_or_else(|| anyhow!("replica {id} is not running"))?;
        self.views.remove(&id);
        self.listening.remove(&id);
        self.paused.remove(&id);
        Ok(child)
    }

    /// Stops replica `id` cleanly (SIGTERM; SIGKILL after [`STOP_WAIT_MAX`]); returns whether
    /// it stopped by itself in time.
    pub async fn terminate(&mut self, id: u32) -> anyhow::Result<bool> {
        if self.is_paused(id) {
            self.signal(id, libc::SIGCONT)?;
        }
        self.signal(id, libc::SIGTERM)?;
        let mut child = self.take(id)?;
        match tokio::time::timeout(STOP_WAIT_MAX, child.wait()).await {
            Ok(status) => {
                status?;
                Ok(true)
            }
            Err(_) => {
                child.start_kill()?;
                child.wait().await?;
                Ok(false)
            }
        }
    }

    /// Sends `signal` to replica `id`.
    pub fn signal(&mut self, id: u32, signal: i32) -> anyhow::Result<()> {
        let pid = self.children.get(&id).and_then(Child::id);
        let pid = pid.ok_or_else(|| anyhow!("replica {id} is not running"))?;
        // SAFETY: kill(2) on our own child's pid has no memory-safety requirements.
        if unsafe { libc::kill(pid as i32, signal) } != 0 {
            bail!("signal {signal} to replica {id}: {}", std::io::Error::last_os_error());
        }
        match signal {
            libc::SIGSTOP => {
                self.paused.insert(id);
            }
            libc::SIGCONT => {
                self.paused.remove(&id);
            }
            _ => {}
        }
        Ok(())
    }

    /// One replica's own status (`RSL.STATUS`), if it answers within `timeout`.
    pub async fn status(&self, id: u32, timeout: Duration) -> Option<StatusReport> {
        let mut client = Client::connect(self.client_addr(id), timeout).await.ok()?;
        match client.cmd(&["RSL.STATUS"]).await.ok()? {
            Reply::Bulk(text) => Some(parse_status(&String::from_utf8_lossy(&text))),
            _ => None,
        }
    }

    /// Kills every replica.
    pub async fn stop_all(&mut self) {
        for id in self.children.keys().copied().collect::<Vec<_>>() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_under_both_names() {
        let now = parse_status("rsl_replica_id:2\r\nrsl_role:primary\r\nrsl_executed_slot:9\r\n");
        let before = parse_status("id:2\r\nrole:primary\r\nexecuted:9\r\nballot:4.2\r\n");
        for s in [&now, &before] {
            assert_eq!(s.get("rsl_role"), "primary");
            assert_eq!(
                (s.number("rsl_replica_id"), s.number("rsl_executed_slot")),
                (Some(2), Some(9))
            );
        }
        assert_eq!(before.get("rsl_ballot"), "4.2");
        assert_eq!(now.get("rsl_ballot"), "-");
    }
}
