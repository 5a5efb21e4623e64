//! Linearizable reads served under the primary's lease without the consensus thread
//! (`Node::read`: the lease the consensus thread publishes, one clock read, the executor
//! waiting for the read's index). The simulator runs the core and its lease arithmetic, not
//! the runtime's threads, so its lease checks cannot see this path: these tests do, on
//! three replicas in one process (real consensus, I/O and executor threads).

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rsl::{
    LocalCluster, LocalOptions, ReadConsistency, ReplicateError, Role, Snapshot, StateMachine,
};

/// Counts the requests executed; a read answers the count.
#[path = "common/lease.rs"]
mod lease;
use lease::{primary, runtime, short_lease_options, until_a_lease_read};

#[derive(Clone, Default)]
struct Counter(Arc<Mutex<u64>>);

struct Empty;

impl Snapshot for Empty {
    fn write_to(&self, _out: &mut dyn io::Write) -> io::Result<()> {
        Ok(())
    }
}

impl StateMachine for Counter {
    fn execute(&mut self, _slot: u64, _request: &[u8]) -> Bytes {
        let mut n = self.0.lock().unwrap();
        *n += 1;
        Bytes::from(n.to_string())
    }

    fn read(&self, _request: &[u8]) -> Bytes {
        Bytes::from(self.0.lock().unwrap().to_string())
    }

    fn snapshot(&self) -> Box<dyn Snapshot> {
        Box::new(Empty)
    }

    fn load_checkpoint(&mut self, _input: &mut dyn io::Read) -> io::Result<()> {
        Ok(())
    }
}

fn count(answer: &Bytes) -> u64 {
    std::str::from_utf8(answer).unwrap().parse().unwrap()
}

/// Under the lease, every read goes straight to the executor and sees every write
/// acknowledged before it started, while writes are in flight.
#[test]
fn lease_reads_see_every_acknowledged_write() {
    runtime().block_on(async {
        let cluster = LocalCluster::start(LocalOptions::default(), |_| Counter::default());
        let p = primary(&cluster).await;
        p.replicate(Bytes::from_static(b"w")).await.unwrap();
        until_a_lease_read(p).await;
        let before = p.status().counters.lease_reads;
        for _ in 0..200 {
            // A write and two reads at once; the read started after the write's answer
            // must see it.
            let (w, r) = tokio::join!(
                p.replicate(Bytes::from_static(b"w")),
                p.read(Bytes::new(), ReadConsistency::Linearizable)
            );
            let (w, r) = (count(&w.unwrap()), count(&r.unwrap()));
            assert!(r + 1 >= w, "a concurrent read saw {r} writes, the write was the {w}th");
            let after = count(&p.read(Bytes::new(), ReadConsistency::Linearizable).await.unwrap());
            assert!(after >= w, "a read after the {w}th write was acknowledged saw {after}");
        }
        let served = p.status().counters.lease_reads - before;
        assert!(served >= 300, "only {served} of 400 reads were served under the lease");
        assert!(p.metrics().contains("rsl_lease_reads_total"), "{}", p.metrics());
    });
}

/// A primary cut off from the others holds its lease no longer than the heartbeat round a
/// majority acknowledged before the cut allows: a read started after that is not served
/// (it waits for a heartbeat round no one acknowledges, and times out), even though the
/// primary has not stepped down yet (check-quorum keeps it primary for `election_ticks_max`
/// ticks, here 4 s, far beyond the lease of 20 ticks, 200 ms). Meanwhile the others may
/// elect a primary and commit writes this one would miss.
///
/// Proven by a planted bug: with `LeasePublication::check` ignoring the lease's end, the
/// read 300 ms after the cut is served (from the published lease) and the test fails.
#[test]
fn an_isolated_primary_serves_no_read_after_its_lease_ends() {
    runtime().block_on(async {
        let options = short_lease_options();
        let cluster = LocalCluster::start(options, |_| Counter::default());
        let p = primary(&cluster).await;
        p.replicate(Bytes::from_static(b"w")).await.unwrap();
        until_a_lease_read(p).await;
        let cut = tokio::time::Instant::now();
        cluster.hub.isolate(p.id());
        // The newest round a majority acknowledged was sent before the cut: its lease ends
        // within 200 ms of it. Time passing is the condition here; no event marks it.
        tokio::time::sleep_until(cut + Duration::from_millis(300)).await;
        let lease_reads = p.status().counters.lease_reads;
        assert!(!p.read_here(ReadConsistency::Linearizable, 1), "a read here past the lease");
        let read = p.read(Bytes::new(), ReadConsistency::Linearizable).await;
        let late = cut.elapsed();
        assert!(
            matches!(read, Err(ReplicateError::Timeout { .. } | ReplicateError::NotPrimary { .. })),
            "a read {late:?} after the cut, past the lease, was answered {read:?}"
        );
        assert_eq!(p.status().counters.lease_reads, lease_reads, "served under the lease");
        // The primary was still primary when the read started (so the lease's end, not a
        // step-down, refused it), unless the machine stalled for seconds.
        if late < Duration::from_secs(3) {
            assert_eq!(p.status().role, Role::Primary);
        }
    });
}

/// A primary that handed primacy over serves no read under the lease it held: after the
/// transfer, a write acknowledged by the new primary is missed by the old one's state until
/// it learns of it, so a read there must be refused, well inside the old lease (1 s here).
///
/// Proven by a planted bug: with the published lease cleared neither when primacy ends nor
/// before StartElection is sent, and the end of the turn publishing only leases it has (never
/// clearing), the old primary answers the read from its stale state and the test fails.
#[test]
fn a_primary_that_handed_over_serves_no_read_under_its_old_lease() {
    runtime().block_on(async {
        let mut options = LocalOptions::default();
        // 50 ms ticks: a lease of 20 ticks is 1 s, ample for the transfer and a write.
        options.consensus.tick_ms = 50;
        let cluster = LocalCluster::start(options, |_| Counter::default());
        let old = primary(&cluster).await;
        old.replicate(Bytes::from_static(b"w")).await.unwrap();
        until_a_lease_read(old).await;
        let target = cluster.nodes.iter().find(|n| n.id() != old.id()).unwrap();
        let started = std::time::Instant::now();
        old.transfer_primacy(Some(target.id()));
        let mut view = target.watch();
        tokio::time::timeout(
            Duration::from_secs(5),
            view.wait_for(|v| v.role == Some(Role::Primary)),
        )
        .await
        .expect("the target did not take over in 5 s")
        .unwrap();
        // From here the old primary hears nothing: its state cannot learn of the next write.
        cluster.hub.isolate(old.id());
        let written = count(&target.replicate(Bytes::from_static(b"new")).await.unwrap());
        assert!(!old.read_here(ReadConsistency::Linearizable, 1), "a read here after handing over");
        let read = old.read(Bytes::new(), ReadConsistency::Linearizable).await;
        let took = started.elapsed();
        match read {
            Ok(answer) => {
                let seen = count(&answer);
                assert!(
                    seen >= written,
                    "the old primary answered {seen} after the new one acknowledged write \
                     {written} ({took:?} after the transfer began)"
                );
            }
            Err(e) => assert!(
                matches!(e, ReplicateError::NotPrimary { .. }),
                "the old primary refused with {e:?}"
            ),
        }
        assert!(took < Duration::from_secs(1), "{took:?}: past the old lease, proves nothing");
    });
}

/// A counter whose request `gate` waits, in the middle of its execution, until the test
/// opens the gate (each replica's executor tells the test when it got there).
#[derive(Clone)]
struct Gated {
    id: u32,
    count: Arc<Mutex<u64>>,
    entered: tokio::sync::mpsc::UnboundedSender<u32>,
    gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl StateMachine for Gated {
    fn execute(&mut self, _slot: u64, request: &[u8]) -> Bytes {
        if request == b"gate" {
            let _ = self.entered.send(self.id);
            let (open, opened) = &*self.gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = opened.wait(open).unwrap();
            }
        }
        let mut n = self.count.lock().unwrap();
        *n += 1;
        Bytes::from(n.to_string())
    }

    fn read(&self, _request: &[u8]) -> Bytes {
        Bytes::from(self.count.lock().unwrap().to_string())
    }

    fn snapshot(&self) -> Box<dyn Snapshot> {
        Box::new(Empty)
    }

    fn load_checkpoint(&mut self, _input: &mut dyn io::Read) -> io::Result<()> {
        Ok(())
    }
}

/// Opens a [`Gated`] machine's gate when dropped.
struct Opener(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Drop for Opener {
    fn drop(&mut self) {
        let (open, opened) = &*self.0;
        *open.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        opened.notify_all();
    }
}

/// `Node::read_here` says yes only once the state machine has *finished* executing the slot
/// a read must see: while the primary's executor is inside slot `s` (`executed` already
/// says `s`), a read at `AtLeast(s)` may not be served from the state, one at `s - 1` may;
/// after `s`, both. A follower never serves a linearizable read here; the primary does
/// under its lease and counts it.
///
/// Proven by a planted bug: with `read_here` comparing against `executed` (published before
/// a slot executes) instead of `applied`, the read at `AtLeast(s)` is allowed mid-slot and
/// the test fails.
#[test]
fn read_here_waits_until_the_slot_has_finished_executing() {
    runtime().block_on(async {
        let (entered, mut entries) = tokio::sync::mpsc::unbounded_channel();
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let cluster = LocalCluster::start(LocalOptions::default(), |id| Gated {
            id,
            count: Arc::default(),
            entered: entered.clone(),
            gate: Arc::clone(&gate),
        });
        let p = primary(&cluster).await;
        p.replicate(Bytes::from_static(b"w")).await.unwrap();
        until_a_lease_read(p).await;
        let before = p.status().counters.lease_reads;
        assert!(p.read_here(ReadConsistency::Linearizable, 3), "no read here under the lease");
        assert_eq!(p.status().counters.lease_reads, before + 3, "the reads here are counted");
        for follower in cluster.nodes.iter().filter(|n| n.id() != p.id()) {
            assert!(!follower.read_here(ReadConsistency::Linearizable, 1), "a follower read");
        }

        let checks = async {
            while entries.recv().await.unwrap() != p.id() {}
            // Opened when this block ends, even by a failed assertion (else the executors
            // would wait for good and the cluster never stop).
            let _open = Opener(Arc::clone(&gate));
            let s = p.executed();
            assert!(p.read_here(ReadConsistency::AtLeast(s - 1), 1), "slot {} is done", s - 1);
            assert!(!p.read_here(ReadConsistency::AtLeast(s), 1), "slot {s} is still executing");
            s
        };
        let (written, s) = tokio::join!(p.replicate(Bytes::from_static(b"gate")), checks);
        written.unwrap();
        // The executor serves this read after it finished the slot (it is sent once the slot
        // executes, and served in order behind it).
        p.read(Bytes::new(), ReadConsistency::AtLeast(s)).await.unwrap();
        assert!(p.read_here(ReadConsistency::AtLeast(s), 1), "slot {s} has executed");
    });
}

/// What a primary says is chosen (`Node::chosen`, handed to followers with each read-index
/// answer: a follower that learns it may execute those slots and serve reads from them at
/// once) is always within the index of its own lease reads (`Node::read_index`): otherwise a
/// follower could serve a write that this primary's next lease read misses, a stale read
/// after a fresh one (the nemesis found it on 2026-12-07: the consensus thread published its
/// commit point as chosen, then handed the slot to its executor and only then raised its
/// lease's index, and it was preempted in between). Sampled from a thread of its own while
/// writes commit, chosen first: any later index must be at least that claim.
///
/// Proven by a planted bug: without `publish_chosen` raising the lease's index first, the
/// sampler sees a claim above the index within the writes below (thousands of times).
#[test]
fn what_a_primary_says_is_chosen_is_within_its_lease_index() {
    let rt = runtime();
    let cluster =
        rt.block_on(async { LocalCluster::start(LocalOptions::default(), |_| Counter::default()) });
    let p = rt.block_on(async {
        let p = primary(&cluster).await;
        p.replicate(Bytes::from_static(b"w")).await.unwrap();
        until_a_lease_read(p).await;
        p
    });
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (samples, above) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let (mut samples, mut above) = (0u64, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(chosen) = p.chosen() else { continue };
                let Some(index) = p.read_index() else { continue };
                samples += 1;
                if index < chosen.through {
                    above.push((chosen.through, index));
                }
            }
            (samples, above)
        });
        rt.block_on(async {
            for _ in 0..300 {
                let batch = (0..32).map(|_| Bytes::from_static(b"w")).collect();
                for outcome in p.replicate_batch(batch).await {
                    outcome.unwrap();
                }
            }
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap()
    });
    assert!(samples > 0, "no sample had both a claim and a lease");
    assert!(
        above.is_empty(),
        "{} of {samples} claims of what is chosen were above the lease's index, e.g. \
         (claim, index) {:?}",
        above.len(),
        &above[..above.len().min(5)]
    );
}
