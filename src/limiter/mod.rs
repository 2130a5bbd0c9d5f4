//! Exact sliding-window rate limiter: decisions and the stored encoding.
//!
//! Pure logic with no Redis dependency; the command glue reads the key's
//! string value, calls [`check_and_store`] (or [`record_rules`] on replicas /
//! AOF replay), writes the returned bytes and, when it moved, the returned
//! expiry.

mod codec;
mod legacy;
mod rule;
mod window;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod multi_tests;
#[cfg(test)]
mod prop_tests;

pub use legacy::{from_legacy, is_legacy};
pub use rule::{
    Rule, Rules, StateError, MAX_COST, MAX_LIMIT, MAX_RULES, MAX_WINDOW_MS, MIN_WINDOW_MS,
};
// The glue uses `check_and_store`; `check`, `expire_at_ms` and `validate`
// are the plain forms the tests reach.
pub use window::{
    check, check_and_store, expire_at_ms, info, peek, peek_rules, record, record_rules, refund,
    validate, Decision, Effect, Expiry, Info, Refund,
};

/// The one-rule form of [`check_and_store`] that the older tests were
/// written against.
#[cfg(test)]
pub(crate) fn check_and_store_one(
    state: Option<&[u8]>,
    now_ms: u64,
    rule: Rule,
    cost: u64,
    out: &mut Vec<u8>,
) -> Result<(Decision, Effect), StateError> {
    check_and_store(state, now_ms, &Rules::one(rule), cost, out)
}
