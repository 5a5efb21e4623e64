//! The transport's configuration and the reconnection backoff.
//!
//! A configuration is validated once, in [`TransportConfig::validate`], before any task starts;
//! after that the peer set is fixed for the transport's lifetime (membership changes restart
//! the transport with a new configuration).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;

use crate::frame::cluster_name_valid;
use crate::limits::{
    BACKOFF_INITIAL_DEFAULT, BACKOFF_MAX_DEFAULT, FRAME_PAYLOAD_BYTES_MAX,
    HANDSHAKE_TIMEOUT_DEFAULT, IDLE_TIMEOUT_DEFAULT, INCOMING_FRAMES_MAX_DEFAULT, PEERS_MAX,
    PING_INTERVAL_DEFAULT, QUEUE_BYTES_MAX_DEFAULT, QUEUE_FRAMES_MAX_DEFAULT,
};
use crate::tls::TlsIdentity;
use crate::ReplicaId;

/// Everything a transport needs to start.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// The cluster's name, carried in every hello; a peer of another cluster is refused.
    pub cluster: String,
    /// This replica's id.
    pub id: ReplicaId,
    /// Where to listen for peers (ignored by [`crate::TcpTransport::start_with_listener`]).
    pub listen: SocketAddr,
    /// The other replicas: id to address. Must not contain `id`.
    pub peers: BTreeMap<ReplicaId, SocketAddr>,
    /// Bound on the frames queued for one peer; `send` fails with `QueueFull` above it.
    pub queue_frames_max: usize,
    /// Bound on the payload bytes queued for one peer.
    pub queue_bytes_max: usize,
    /// Bound on the received frames waiting in the incoming channel. When it is full the
    /// readers stop reading, and TCP flow control pushes back on the senders.
    pub incoming_frames_max: usize,
    /// Reconnection delays.
    pub backoff: BackoffConfig,
    /// Time allowed for TCP connect, TLS handshake and hello exchange together.
    pub handshake_timeout: Duration,
    /// An established connection with nothing to send for this long sends a ping frame.
    pub ping_interval: Duration,
    /// An established connection that receives nothing (not even a ping) for this long is
    /// closed: the peer is dead or cut off, which TCP alone may take minutes to notice.
    pub idle_timeout: Duration,
    /// Plaintext or mutual TLS.
    pub security: Security,
}

/// How replicas authenticate each other.
#[derive(Clone, Debug)]
pub enum Security {
    /// No authentication and no encryption: for tests and benchmarks on a trusted network.
    /// Anyone who can reach the port can claim any replica id.
    Plaintext,
    /// Mutual TLS: both ends present a certificate signed by the cluster's CA naming
    /// `replica-<id>.rsl`, and the id in the hello must be the id in the certificate.
    MutualTls(TlsIdentity),
}

/// Exponential backoff between reconnection attempts: the delay doubles from `initial` up to
/// `max`, and each wait is drawn uniformly from the upper half of the current delay (jitter),
/// so that replicas that lost each other at the same moment do not retry in lockstep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first delay.
    pub initial: Duration,
    /// The cap.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig { initial: BACKOFF_INITIAL_DEFAULT, max: BACKOFF_MAX_DEFAULT }
    }
}

/// Why a configuration cannot start a transport.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The cluster name is empty, too long, or has characters outside `[A-Za-z0-9._-]`.
    #[error("invalid cluster name {0:?}")]
    ClusterName(String),
    /// The peers include this replica's own id.
    #[error("the peers include this replica's own id {0}")]
    SelfInPeers(ReplicaId),
    /// More peers than [`PEERS_MAX`].
    #[error("{0} peers exceed the maximum of {PEERS_MAX}")]
    TooManyPeers(usize),
    /// A queue bound is zero or out of range.
    #[error("invalid queue bound: {0}")]
    QueueBound(&'static str),
    /// The backoff is zero or its cap is below its start.
    #[error("invalid backoff: initial {initial:?}, max {max:?}")]
    Backoff {
        /// The configured initial delay.
        initial: Duration,
        /// The configured cap.
        max: Duration,
    },
    /// The handshake timeout is zero.
    #[error("handshake timeout must be positive")]
    HandshakeTimeout,
    /// The ping interval is zero or not below the idle timeout (a healthy idle connection
    /// would then be closed between two pings).
    #[error("ping interval {ping_interval:?} must be positive and below the idle timeout {idle_timeout:?}")]
    Keepalive {
        /// The configured ping interval.
        ping_interval: Duration,
        /// The configured idle timeout.
        idle_timeout: Duration,
    },
}

impl TransportConfig {
    /// A configuration with default bounds, backoff and timeouts, in plaintext.
    pub fn new(
        cluster: impl Into<String>,
        id: ReplicaId,
        listen: SocketAddr,
        peers: BTreeMap<ReplicaId, SocketAddr>,
    ) -> TransportConfig {
        TransportConfig {
            cluster: cluster.into(),
            id,
            listen,
            peers,
            queue_frames_max: QUEUE_FRAMES_MAX_DEFAULT,
            queue_bytes_max: QUEUE_BYTES_MAX_DEFAULT,
            incoming_frames_max: INCOMING_FRAMES_MAX_DEFAULT,
            backoff: BackoffConfig::default(),
            handshake_timeout: HANDSHAKE_TIMEOUT_DEFAULT,
            ping_interval: PING_INTERVAL_DEFAULT,
            idle_timeout: IDLE_TIMEOUT_DEFAULT,
            security: Security::Plaintext,
        }
    }

    /// Checks every field; the transport starts only from a valid configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !cluster_name_valid(&self.cluster) {
            return Err(ConfigError::ClusterName(self.cluster.clone()));
        }
        if self.peers.contains_key(&self.id) {
            return Err(ConfigError::SelfInPeers(self.id));
        }
        if self.peers.len() > PEERS_MAX {
            return Err(ConfigError::TooManyPeers(self.peers.len()));
        }
        if self.queue_frames_max == 0 {
            return Err(ConfigError::QueueBound("queue_frames_max is zero"));
        }
        if self.queue_bytes_max < FRAME_PAYLOAD_BYTES_MAX {
            return Err(ConfigError::QueueBound("queue_bytes_max is below one maximal frame"));
        }
        if self.incoming_frames_max == 0 {
            return Err(ConfigError::QueueBound("incoming_frames_max is zero"));
        }
        let BackoffConfig { initial, max } = self.backoff;
        if initial.is_zero() || max < initial {
            return Err(ConfigError::Backoff { initial, max });
        }
        if self.handshake_timeout.is_zero() {
            return Err(ConfigError::HandshakeTimeout);
        }
        let (ping_interval, idle_timeout) = (self.ping_interval, self.idle_timeout);
        if ping_interval.is_zero() || ping_interval >= idle_timeout {
            return Err(ConfigError::Keepalive { ping_interval, idle_timeout });
        }
        Ok(())
    }
}

/// The state of one peer's backoff: the current delay and a small random generator for the
/// jitter (seeded per peer; the jitter needs spread, not cryptographic quality).
#[derive(Debug)]
pub(crate) struct Backoff {
    config: BackoffConfig,
    current: Duration,
    rng: u64,
}

impl Backoff {
    pub(crate) fn new(config: BackoffConfig, seed: u64) -> Backoff {
        assert!(!config.initial.is_zero() && config.initial <= config.max);
        Backoff { config, current: config.initial, rng: seed | 1 }
    }

    /// The next wait, in `[current / 2, current]`; then the delay doubles, up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let current = self.current;
        let half = current / 2;
        let spread = (current - half).as_nanos() as u64;
        let delay = half + Duration::from_nanos(self.next_random() % (spread + 1));
        assert!(delay >= half && delay <= current && delay <= self.config.max);
        self.current = (current * 2).min(self.config.max);
        delay
    }

    /// Back to the initial delay, after a connection succeeded.
    pub(crate) fn reset(&mut self) {
        self.current = self.config.initial;
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: enough spread for jitter.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TransportConfig {
        let listen = "127.0.0.1:0".parse().unwrap();
        let peers = BTreeMap::from([(2, "127.0.0.1:1".parse().unwrap())]);
        TransportConfig::new("test", 1, listen, peers)
    }

    #[test]
    fn default_config_is_valid_and_bad_fields_are_named() {
        assert_eq!(config().validate(), Ok(()));
        let mut bad = config();
        bad.cluster = "has space".into();
        assert_eq!(bad.validate(), Err(ConfigError::ClusterName("has space".into())));
        let mut bad = config();
        bad.peers.insert(1, "127.0.0.1:2".parse().unwrap());
        assert_eq!(bad.validate(), Err(ConfigError::SelfInPeers(1)));
        let mut bad = config();
        bad.queue_frames_max = 0;
        assert!(matches!(bad.validate(), Err(ConfigError::QueueBound(_))));
        let mut bad = config();
        bad.queue_bytes_max = 10;
        assert!(matches!(bad.validate(), Err(ConfigError::QueueBound(_))));
        let mut bad = config();
        bad.backoff.max = Duration::from_millis(1);
        assert!(matches!(bad.validate(), Err(ConfigError::Backoff { .. })));
        let mut bad = config();
        bad.handshake_timeout = Duration::ZERO;
        assert_eq!(bad.validate(), Err(ConfigError::HandshakeTimeout));
        let mut bad = config();
        bad.ping_interval = bad.idle_timeout;
        assert!(matches!(bad.validate(), Err(ConfigError::Keepalive { .. })));
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_and_resets() {
        let config =
            BackoffConfig { initial: Duration::from_millis(10), max: Duration::from_millis(100) };
        let mut backoff = Backoff::new(config, 42);
        let caps = [10, 20, 40, 80, 100, 100, 100];
        let mut delays = Vec::new();
        for cap in caps {
            let delay = backoff.next_delay();
            let cap = Duration::from_millis(cap);
            assert!(delay >= cap / 2 && delay <= cap, "{delay:?} outside [{:?}, {cap:?}]", cap / 2);
            delays.push(delay);
        }
        // Jitter: the capped delays are not all equal.
        assert!(delays[4..].windows(2).any(|w| w[0] != w[1]), "{delays:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(10));
    }
}
