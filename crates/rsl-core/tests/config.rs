//! The core's configuration is validated, and an invalid one names its field.

use rsl_core::Config;

#[test]
fn configs_are_validated() {
    assert_eq!(Config::new(1, [1, 2, 3]).validate(), Ok(()));
    let mut cfg = Config::new(1, [1, 2, 3]);
    cfg.lease_ticks = cfg.election_ticks_min;
    assert_eq!(cfg.validate().unwrap_err().field, "lease_ticks");
    let mut cfg = Config::new(1, [1, 2, 3]);
    cfg.log_memory_entries_max = 1;
    assert_eq!(cfg.validate().unwrap_err().field, "log_memory_entries_max");
}

/// The queue's byte bound holds at least one maximal request (at the bound it is valid, one
/// byte below it is refused naming the field): a smaller bound would take the largest
/// requests only into an empty queue, which under load never is.
#[test]
fn the_queue_holds_at_least_one_maximal_request() {
    let mut cfg = Config::new(1, [1, 2, 3]);
    cfg.proposals_queued_bytes_max = cfg.request_bytes_max;
    assert_eq!(cfg.validate(), Ok(()));
    cfg.proposals_queued_bytes_max = cfg.request_bytes_max - 1;
    let e = cfg.validate().unwrap_err();
    assert_eq!(e.field, "proposals_queued_bytes_max");
    assert!(e.reason.contains("request_bytes_max"), "{e:?}");
    // The defaults hold four.
    let cfg = Config::new(1, [1, 2, 3]);
    assert!(cfg.proposals_queued_bytes_max >= 4 * cfg.request_bytes_max);
}
