//! The example runs as its users would run it: the real binary, three real processes, a
//! follower and then the primary killed with SIGKILL and restarted. The demo exits non-zero
//! when replicas disagree, money is made or lost, or balances differ from what the
//! acknowledged transfers imply (a state machine that ignores its checkpoint fails it).

use std::process::Command;

#[test]
fn the_bank_demo_survives_a_killed_follower_and_a_killed_primary() {
    let output = Command::new(env!("CARGO_BIN_EXE_rsl-bank"))
        .args(["demo", "--transfers", "150"])
        .output()
        .expect("run rsl-bank demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("restarted follower"), "{stdout}");
    assert!(stdout.contains("killed primary"), "{stdout}");
    assert!(stdout.contains("every replica agrees"), "{stdout}");
}
