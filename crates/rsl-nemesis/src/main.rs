//! The `rsl-nemesis` command.

fn main() {}
