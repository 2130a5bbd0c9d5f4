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

/// Most rules one check applies (`<limit> <window_seconds>` pairs, or the
/// comma-separated rules of a policy).
pub const MAX_RULES: usize = 8;

/// The 1 to [`MAX_RULES`] rules of one check, all of which must allow.
/// A fixed array, so that a check allocates nothing for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    items: [Rule; MAX_RULES],
    len: usize,
}

impl Rules {
    /// One rule.
    pub fn one(rule: Rule) -> Self {
        Rules {
            items: [rule; MAX_RULES],
            len: 1,
        }
    }

    /// 1 to [`MAX_RULES`] rules, each within the public bounds.
    pub fn new(rules: &[Rule]) -> Result<Self, StateError> {
        let Some(&first) = rules.first() else {
            return Err(StateError::InvalidArgument("at least one rule is needed"));
        };
        if rules.len() > MAX_RULES {
            return Err(StateError::InvalidArgument("at most 8 rules"));
        }
        let mut out = Rules::one(first);
        for (slot, rule) in out.items.iter_mut().zip(rules) {
            rule.validate()?;
            *slot = *rule;
        }
        out.len = rules.len();
        Ok(out)
    }

    /// Adds a rule; fails past [`MAX_RULES`].
    pub fn push(&mut self, rule: Rule) -> Result<(), StateError> {
        let slot = self
            .items
            .get_mut(self.len)
            .ok_or(StateError::InvalidArgument("at most 8 rules"))?;
        *slot = rule;
        self.len += 1;
        Ok(())
    }

    pub fn as_slice(&self) -> &[Rule] {
        self.items.get(..self.len).unwrap_or(&[])
    }

    pub fn validate(&self) -> Result<(), StateError> {
        if self.len == 0 || self.len > MAX_RULES {
            return Err(StateError::InvalidArgument("1 to 8 rules"));
        }
        self.as_slice().iter().try_for_each(Rule::validate)
    }

    /// The longest window and the largest limit among the rules: what the
    /// limiter must keep for every one of them to stay exact.
    pub fn cover(&self) -> Rule {
        let slice = self.as_slice();
        Rule {
            limit: slice.iter().map(|r| r.limit).max().unwrap_or(1),
            window_ms: slice
                .iter()
                .map(|r| r.window_ms)
                .max()
                .unwrap_or(MIN_WINDOW_MS),
        }
    }
}
