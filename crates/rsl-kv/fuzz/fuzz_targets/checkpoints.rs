//! Fuzzes checkpoint loading: it must never panic, a refused checkpoint changes nothing, and an
//! accepted one writes back byte for byte.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rsl::StateMachine;
use rsl_kv::KvMachine;

fuzz_target!(|data: &[u8]| {
    let mut machine = KvMachine::new();
    if machine.load_checkpoint(&mut &data[..]).is_ok() {
        machine.check_invariants();
        let mut out = Vec::new();
        machine.snapshot().write_to(&mut out).unwrap();
        assert_eq!(out, data);
    } else {
        assert!(machine.is_empty() && machine.now_ms() == 0);
    }
});
