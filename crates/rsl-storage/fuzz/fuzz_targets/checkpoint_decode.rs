//! Decoding an arbitrary checkpoint image must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rsl_storage::decode_checkpoint(data);
});
