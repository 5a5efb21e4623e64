//! Fuzzes the binary request decoder and the state machine: decoding must never panic, the
//! encoding is canonical (a decoded request re-encodes to the same bytes), and executing or
//! reading any bytes leaves the machine's invariants intact.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rsl::StateMachine;
use rsl_kv::request::Request;
use rsl_kv::KvMachine;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Request::decode(data) {
        assert_eq!(&request.encode()[..], data);
    }
    let mut machine = KvMachine::new();
    for part in data.split(|b| *b == 0xff) {
        let _ = machine.execute(1, part);
        let _ = machine.read(part);
    }
    machine.check_invariants();
});
