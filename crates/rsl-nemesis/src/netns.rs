//! The network: one namespace per replica, each joined by a veth pair to a bridge in the root
//! namespace, and partitions made of blackhole routes.
//!
//! A run claims a **slot** `N` (0 to [`SLOTS_MAX`]), so that runs side by side do not meet:
//! the bridge is `rnemN` with address `10.213.N.254`, replica `i` lives in namespace
//! `rnemN-ri` with address `10.213.N.i` behind veth `rnemN-vi`. The clients run in the root
//! namespace and reach every replica through the bridge; partitions cut only the replicas'
//! paths to one another, so a client can still reach an isolated replica and see how it
//! answers.
//!
//! [`Net::block`] adds a blackhole route in one namespace to another replica's address: that
//! replica can then not send anything to the other, not even a TCP acknowledgement. Blocking
//! both directions isolates; blocking one gives TCP's one-way partition, where the data of
//! connections already open still flows the other way but no new connection can be made.
//! (`tc netem` does not work on these machines and there is no iptables, so routes it is.)
//!
//! A slot is claimed by creating `/run/rsl-nemesis/slot-N` (exclusively) holding the owner's
//! pid, its start time and the run's directory. At every start, slots whose owner is gone
//! (a run that crashed or was killed) are cleaned: the processes left in their namespaces are
//! killed, the namespaces and the bridge deleted, the filesystems under their run directory
//! unmounted. [`Net`] tears its own slot down when dropped.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// How many runs may share a machine.
pub const SLOTS_MAX: u8 = 32;

/// Where slots are claimed.
pub const REGISTRY_DIR: &str = "/run/rsl-nemesis";

/// The first two octets of every slot's subnet (`10.213.N.0/24`).
pub const SUBNET: [u8; 2] = [10, 213];

/// The bridge's host number in the subnet.
const BRIDGE_HOST: u8 = 254;

/// Where `ip netns` keeps its namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Runs `ip` with `args`; its error output becomes the error.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("running `ip` (iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn bridge_name(slot: u8) -> String {
    format!("rnem{slot}")
}

fn namespace_name(slot: u8, id: u32) -> String {
    format!("rnem{slot}-r{id}")
}

fn veth_name(slot: u8, id: u32) -> String {
    format!("rnem{slot}-v{id}")
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`), if it exists and has not
/// died (a zombie waiting to be reaped is dead).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let mut rest = stat[stat.rfind(')')? + 2..].split_whitespace();
    if matches!(rest.next(), Some("Z" | "X")) {
        return None;
    }
    rest.nth(18)?.parse().ok()
}

/// The owner of a slot, as its file records it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    pid: u32,
    started: u64,
    run_dir: PathBuf,
}

impl Owner {
    fn me(run_dir: &Path) -> Owner {
        let pid = std::process::id();
        Owner { pid, started: start_time(pid).unwrap_or(0), run_dir: run_dir.to_path_buf() }
    }

    fn text(&self) -> String {
        format!("{}\n{}\n{}\n", self.pid, self.started, self.run_dir.display())
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut lines = text.lines();
        let pid = lines.next()?.parse().ok()?;
        let started = lines.next()?.parse().ok()?;
        let run_dir = PathBuf::from(lines.next()?);
        Some(Owner { pid, started, run_dir })
    }

    fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.started)
    }
}

fn slot_file(slot: u8) -> PathBuf {
    Path::new(REGISTRY_DIR).join(format!("slot-{slot}"))
}

/// Unmounts every filesystem mounted under `dir` (deepest first).
pub fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut points: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir) && p != Path::new("/"))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        crate::disk::unmount(&point);
    }
}

/// Kills whatever runs in a slot's namespaces and deletes them and its bridge; unmounts what
/// is mounted under `run_dir`, if given.
fn clean_slot(slot: u8, run_dir: Option<&Path>) {
    let prefix = format!("rnem{slot}-r");
    for name in namespaces().into_iter().filter(|n| n.starts_with(&prefix)) {
        for pid in ip_output(&["netns", "pids", &name]).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: kill(2) has no memory-safety requirements.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = ip(&["netns", "del", &name]);
    }
    if std::path::Path::new(&format!("/sys/class/net/{}", bridge_name(slot))).exists() {
        let _ = ip(&["link", "del", &bridge_name(slot)]);
    }
    if let Some(dir) = run_dir {
        unmount_under(dir);
    }
}

fn namespaces() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|dir| dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

/// Cleans every slot whose owner is gone, and namespaces or bridges of ours that no slot
/// owns (a run killed while it claimed one). Returns a line per slot cleaned.
pub fn clean_stale() -> Vec<String> {
    let mut cleaned = Vec::new();
    for slot in 0..SLOTS_MAX {
        let file = slot_file(slot);
        let Ok(text) = std::fs::read_to_string(&file) else {
            let ours = namespaces().iter().any(|n| n.starts_with(&format!("rnem{slot}-r")))
                || Path::new(&format!("/sys/class/net/{}", bridge_name(slot))).exists();
            // A run claims its slot before it builds, so a file that appeared meanwhile
            // means the namespaces are that run's.
            if ours && !file.exists() {
                clean_slot(slot, None);
                cleaned.push(format!("slot {slot}: namespaces without an owner"));
            }
            continue;
        };
        match Owner::parse(&text) {
            Some(owner) if owner.alive() => {}
            owner => {
                let dir = owner.as_ref().map(|o| o.run_dir.as_path());
                clean_slot(slot, dir);
                let _ = std::fs::remove_file(&file);
                let by = owner.map_or("an unreadable owner".to_string(), |o| {
                    format!("pid {} (run directory {})", o.pid, o.run_dir.display())
                });
                cleaned.push(format!("slot {slot}: left by {by}"));
            }
        }
    }
    cleaned
}

/// One run's network.
#[derive(Debug)]
pub struct Net {
    slot: u8,
    replicas: u32,
    blocked: BTreeSet<(u32, u32)>,
    torn_down: bool,
}

impl Net {
    /// Cleans stale slots, claims a free one and builds the bridge and `replicas` namespaces.
    pub fn create(replicas: u32, run_dir: &Path) -> anyhow::Result<Net> {
        std::fs::create_dir_all(REGISTRY_DIR)
            .with_context(|| format!("creating {REGISTRY_DIR}"))?;
        for line in clean_stale() {
            eprintln!("rsl-nemesis: cleaned up after an earlier run: {line}");
        }
        let owner = Owner::me(run_dir);
        let slot = (0..SLOTS_MAX)
            .find(|&slot| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(slot_file(slot))
                    .and_then(|mut f| std::io::Write::write_all(&mut f, owner.text().as_bytes()))
                    .is_ok()
            })
            .with_context(|| format!("all {SLOTS_MAX} slots in {REGISTRY_DIR} are taken"))?;
        let mut net = Net { slot, replicas, blocked: BTreeSet::new(), torn_down: false };
        clean_slot(slot, None);
        net.build().context("building the network (needs root and iproute2)")?;
        Ok(net)
    }

    fn build(&mut self) -> anyhow::Result<()> {
        let bridge = bridge_name(self.slot);
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}/24", self.bridge_ip()), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for id in 1..=self.replicas {
            let (ns, veth) = (namespace_name(self.slot, id), veth_name(self.slot, id));
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            ip(&["link", "set", &veth, "master", &bridge])?;
            ip(&["link", "set", &veth, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.ip(id)), "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The slot this run claimed.
    pub fn slot(&self) -> u8 {
        self.slot
    }

    /// Replica `id`'s address.
    pub fn ip(&self, id: u32) -> Ipv4Addr {
        assert!((1..=self.replicas).contains(&id), "replica {id} of {}", self.replicas);
        Ipv4Addr::new(SUBNET[0], SUBNET[1], self.slot, id as u8)
    }

    /// The bridge's address (the clients' source address).
    pub fn bridge_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(SUBNET[0], SUBNET[1], self.slot, BRIDGE_HOST)
    }

    /// The file that names replica `id`'s namespace (for `setns`).
    pub fn namespace_file(&self, id: u32) -> PathBuf {
        Path::new(NETNS_DIR).join(namespace_name(self.slot, id))
    }

    /// Replica `from` can no longer send to replica `to`.
    pub fn block(&mut self, from: u32, to: u32) -> anyhow::Result<()> {
        assert_ne!(from, to, "a replica is not partitioned from itself");
        if self.blocked.insert((from, to)) {
            let ns = namespace_name(self.slot, from);
            ip(&["-n", &ns, "route", "add", "blackhole", &format!("{}/32", self.ip(to))])?;
        }
        Ok(())
    }

    /// Replica `from` can send to replica `to` again.
    pub fn unblock(&mut self, from: u32, to: u32) -> anyhow::Result<()> {
        if self.blocked.remove(&(from, to)) {
            let ns = namespace_name(self.slot, from);
            ip(&["-n", &ns, "route", "del", "blackhole", &format!("{}/32", self.ip(to))])?;
        }
        Ok(())
    }

    /// Cuts both directions between `id` and every other replica.
    pub fn isolate(&mut self, id: u32) -> anyhow::Result<()> {
        for other in (1..=self.replicas).filter(|&o| o != id) {
            self.block(id, other)?;
            self.block(other, id)?;
        }
        Ok(())
    }

    /// The links cut now, as (from, to).
    pub fn blocked(&self) -> &BTreeSet<(u32, u32)> {
        &self.blocked
    }

    /// Removes every cut.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        for (from, to) in self.blocked.clone() {
            self.unblock(from, to)?;
        }
        Ok(())
    }

    /// Deletes the namespaces (killing what still runs in them) and the bridge, and frees
    /// the slot. Idempotent.
    pub fn teardown(&mut self) {
        if std::mem::replace(&mut self.torn_down, true) {
            return;
        }
        clean_slot(self.slot, None);
        let _ = std::fs::remove_file(slot_file(self.slot));
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.teardown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_owner_is_alive_only_while_its_process_is() {
        let me = Owner::me(Path::new("/tmp/x y"));
        assert!(me.alive());
        assert_eq!(Owner::parse(&me.text()), Some(me.clone()));
        let restarted = Owner { started: me.started + 1, ..me.clone() };
        assert!(!restarted.alive(), "a reused pid is not the owner");
        let gone = Owner { pid: u32::MAX - 1, ..me };
        assert!(!gone.alive());
        assert_eq!(Owner::parse("12\nnot a number\n/tmp"), None);
    }
}
