//! Free loopback ports for local clusters (tests, demos, benchmarks).

use std::collections::BTreeSet;
use std::sync::Mutex;

/// Ports this process has handed out already: never twice, so that two clusters (or two
/// members) started one after the other cannot be given the same port before either binds.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// The lowest port handed out.
const PORT_MIN: u16 = 10_000;

/// The lowest port of the kernel's ephemeral range (outgoing connections' local ports).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
}

/// Picks `n` distinct loopback ports that are free now, below the kernel's ephemeral range:
/// a replica that is killed and restarted must find its ports free again, and a port in the
/// ephemeral range may meanwhile become the local end of some outgoing connection (seen as
/// `AddrInUse` at a replica's start, under a full test run's connection churn, with ports
/// from binding port 0). A port is handed out once per process. Another process may still
/// take a port before the caller binds it: callers that can, start again on fresh ports.
pub fn free_loopback_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let (low, high) = (PORT_MIN, ephemeral_low().max(PORT_MIN + 1));
    let mut seed = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    };
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..100 * n {
        if ports.len() == n {
            break;
        }
        // xorshift: any spread will do; the bind below is the real check.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = low + (seed % u64::from(high - low)) as u16;
        if ports.contains(&port) || handed_out.contains(&port) {
            continue;
        }
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
            ports.push(port);
        }
    }
    if ports.len() < n {
        return Err(std::io::Error::other("no free loopback ports below the ephemeral range"));
    }
    handed_out.extend(&ports);
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_distinct_below_the_ephemeral_range_and_never_handed_out_twice() {
        // A thousand ports in a hundred calls: drawn at random from about 22,000, they
        // would repeat some twenty times if the calls did not remember each other's.
        let mut all = BTreeSet::new();
        for _ in 0..100 {
            let ports = free_loopback_ports(10).unwrap();
            assert_eq!(ports.len(), 10);
            for port in ports {
                assert!((PORT_MIN..ephemeral_low()).contains(&port), "{port}");
                assert!(all.insert(port), "port {port} handed out twice");
            }
        }
        for port in all.iter().take(20) {
            std::net::TcpListener::bind(("127.0.0.1", *port)).expect("free");
        }
    }
}
