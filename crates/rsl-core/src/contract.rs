//! The contract macros every handler uses to state what it needs and what it guarantees.
//!
//! `require!` states a precondition, `ensure!` a postcondition, `invariant!` a property of
//! the whole state. All three are plain `assert!`s: they stay on in release builds, because a
//! replica that finds itself in an impossible state must stop rather than corrupt the
//! cluster. Each may name the planted bug that breaks it (`unless Bug`): when that bug is
//! planted (feature `planted-bugs`), the check is skipped so that the simulator's checkers,
//! not the core's own asserts, must catch the damage. `unless Any` marks checks of agreement
//! between replicas, which any planted bug may break.

/// True when `bug` is planted in this replica (always false without `planted-bugs`).
macro_rules! planted {
    ($replica:expr, Any) => {{
        #[cfg(feature = "planted-bugs")]
        let planted = !$replica.config.bugs.0.is_empty();
        #[cfg(not(feature = "planted-bugs"))]
        let planted = {
            let _ = &$replica.config;
            false
        };
        planted
    }};
    ($replica:expr, $bug:ident) => {{
        #[cfg(feature = "planted-bugs")]
        let planted = $replica.config.bugs.has(crate::bugs::Bug::$bug);
        #[cfg(not(feature = "planted-bugs"))]
        let planted = {
            let _ = &$replica.config;
            false
        };
        planted
    }};
}

/// A precondition of a handler.
macro_rules! require {
    (unless $replica:expr, $bug:ident, $cond:expr, $($msg:tt)+) => {
        if !planted!($replica, $bug) {
            assert!($cond, "precondition: {}", format_args!($($msg)+));
        }
    };
    ($cond:expr, $($msg:tt)+) => {
        assert!($cond, "precondition: {}", format_args!($($msg)+))
    };
}

/// A postcondition of a handler.
macro_rules! ensure {
    (unless $replica:expr, $bug:ident, $cond:expr, $($msg:tt)+) => {
        if !planted!($replica, $bug) {
            assert!($cond, "postcondition: {}", format_args!($($msg)+));
        }
    };
    ($cond:expr, $($msg:tt)+) => {
        assert!($cond, "postcondition: {}", format_args!($($msg)+))
    };
}

/// An invariant of the replica's whole state.
macro_rules! invariant {
    (unless $replica:expr, $bug:ident, $cond:expr, $($msg:tt)+) => {
        if !planted!($replica, $bug) {
            assert!($cond, "invariant: {}", format_args!($($msg)+));
        }
    };
    ($cond:expr, $($msg:tt)+) => {
        assert!($cond, "invariant: {}", format_args!($($msg)+))
    };
}
