//! placeholder
pub mod kv;
pub mod linearizability;
pub mod rng;
