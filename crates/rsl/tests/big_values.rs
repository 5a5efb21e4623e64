//! A large request costs the consensus threads no copy of its payload: the primary encodes
//! an accept once for all its followers, as a small head per follower and the request's own
//! memory as the body (`envelope::Sealer`, `rsl_net::SharedPayload`), and the followers decode
//! it without copying. Before, the primary encoded each accept into a fresh buffer of the
//! value's size once per follower, on its consensus thread, and a 16 MiB value stalled that
//! thread long enough to lose the lease (docs/benchmarks.md, "Big values"). Proven by counting
//! the allocations of at least half the value's size made on the threads named
//! `rsl-consensus-*`, over TCP (plaintext and mutual TLS) between three `Node::start` replicas;
//! the value must arrive whole on every replica.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use common::{configs, primary_of, start_all};
use rsl::{ReadConsistency, ReplicateError, ReplicateOptions};

/// The request's size: large enough that a copy of it cannot hide among ordinary buffers.
const VALUE_BYTES: usize = 8 << 20;

/// An allocation of at least this many bytes is a copy of the value (or of a message that
/// carries it).
const LARGE_BYTES_MIN: usize = VALUE_BYTES / 2;

static LARGE_ON_CONSENSUS: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the large allocations made on consensus threads.
struct Counting;

fn note(size: usize) {
    // Only for large sizes: `thread::current` may allocate (a small size, not counted).
    if size >= LARGE_BYTES_MIN
        && std::thread::current().name().is_some_and(|n| n.starts_with("rsl-consensus"))
    {
        LARGE_ON_CONSENSUS.fetch_add(1, Relaxed);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn run(tls: bool) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (journals, nodes) = start_all(&configs(root.path(), tls));
        let value = Bytes::from((0..VALUE_BYTES).map(|i| (i % 253) as u8).collect::<Vec<u8>>());
        let before = LARGE_ON_CONSENSUS.load(Relaxed);
        let mut slot = None;
        for _ in 0..100 {
            let p = primary_of(&nodes).await;
            // Generous: megabytes through fsync on a loaded machine in a debug build.
            let options = ReplicateOptions::default().timeout(Duration::from_secs(120));
            let node = nodes[p].as_ref().unwrap();
            match node.replicate_with(value.clone(), options).await {
                Ok(_) => {
                    slot = Some(node.status().executed);
                    break;
                }
                Err(ReplicateError::NotPrimary { .. } | ReplicateError::Superseded { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        let slot = slot.expect("the value never replicated");
        for node in nodes.iter().flatten() {
            let read = node.read(Bytes::new(), ReadConsistency::AtLeast(slot));
            tokio::time::timeout(Duration::from_secs(60), read).await.unwrap().unwrap();
        }
        let copies = LARGE_ON_CONSENSUS.load(Relaxed) - before;
        for journal in &journals {
            let journal = journal.0.lock().unwrap();
            assert!(journal.iter().any(|r| r[..] == value[..]), "a replica lacks the value");
        }
        for node in nodes.iter().flatten() {
            node.shutdown();
        }
        assert_eq!(copies, 0, "allocations of the value's size on the consensus threads");
    });
}

#[test]
fn a_large_value_is_not_copied_on_the_consensus_threads() {
    run(false);
}

#[test]
fn a_large_value_is_not_copied_on_the_consensus_threads_over_tls() {
    run(true);
}
