//! The rule a limiter applies, its public bounds and the errors of the
//! limiter: shared by the decision logic (`window`) and the stored encoding
//! (`codec`), which do not depend on each other for them.

use std::fmt;

/// Largest `limit` accepted.
pub const MAX_LIMIT: u64 = 1_000_000;
/// Smallest `window_ms` accepted (1 s).
pub const MIN_WINDOW_MS: u64 = 1_000;
/// Largest `window_ms` accepted (30 days).
pub const MAX_WINDOW_MS: u64 = 2_592_000_000;
/// Largest `cost` of one check accepted.
pub const MAX_COST: u64 = 1_000_000;

/// A limiting policy: at most `limit` units in any `window_ms` window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub limit: u64,
    pub window_ms: u64,
}

impl Rule {
    /// A rule with its bounds checked.
    pub fn new(limit: u64, window_ms: u64) -> Result<Self, StateError> {
        let rule = Rule { limit, window_ms };
        rule.validate()?;
        Ok(rule)
    }

    /// Checks `limit` and `window_ms` against the public bounds.
    pub fn validate(&self) -> Result<(), StateError> {
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(StateError::InvalidArgument("limit out of range"));
        }
        if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&self.window_ms) {
            return Err(StateError::InvalidArgument("window out of range"));
        }
        Ok(())
    }
}

/// Checks `cost` against the public bounds.
pub fn validate_cost(cost: u64) -> Result<(), StateError> {
    if (1..=MAX_COST).contains(&cost) {
        Ok(())
    } else {
        Err(StateError::InvalidArgument("cost out of range"))
    }
}

/// Why an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateError {
    /// The stored value is not a (valid) limiter state.
    Corrupt(&'static str),
    /// An argument is out of the public bounds (see the constants).
    InvalidArgument(&'static str),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Corrupt(what) => write!(f, "corrupt rate limiter state: {what}"),
            StateError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
        }
    }
}

impl std::error::Error for StateError {}
