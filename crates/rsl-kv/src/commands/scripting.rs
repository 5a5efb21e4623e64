//! Scripts (EVAL, EVALSHA, SCRIPT): not yet supported.

use super::CommandDef;

pub(super) const COMMANDS: &[CommandDef] = &[];

/// The scripting engine's state on one replica (not replicated: the scripts themselves are,
/// in the keyspace's `Db::scripts`).
#[derive(Debug, Default)]
pub struct Scripting {}
