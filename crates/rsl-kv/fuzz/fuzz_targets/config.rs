//! Fuzzes the configuration loaders: `rsl::NodeConfig::from_toml` (a replica's TOML) and
//! `rsl_kv::KvConfig::from_toml` (an rsl-kv replica's, which embeds it). Any text must give
//! `Ok` or a typed error, never a panic; a configuration they accept must validate, answer its
//! derived addresses without panicking, and read back equal from the TOML it writes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rsl::NodeConfig;
use rsl_kv::KvConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = NodeConfig::from_toml(text) {
        assert!(config.validate().is_ok());
        let _ = config.listen_addr();
        let written = toml::to_string(&config).expect("a node configuration serializes");
        assert_eq!(NodeConfig::from_toml(&written).as_ref().ok(), Some(&config), "{written}");
    }
    if let Ok(config) = KvConfig::from_toml(text) {
        assert!(config.validate().is_ok());
        let _ = config.listen_addr();
        let _ = config.client_addrs();
        let written = config.to_toml();
        assert_eq!(KvConfig::from_toml(&written).as_ref().ok(), Some(&config), "{written}");
    }
});
