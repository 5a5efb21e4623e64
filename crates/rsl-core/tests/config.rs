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
