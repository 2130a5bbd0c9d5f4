//! Exact sliding-window rate limiter: decisions and the stored encoding.
//!
//! Pure logic with no Redis dependency; the command glue reads the key's
//! string value, calls [`check_and_store`] (or [`record`] on replicas / AOF
//! replay), writes the returned bytes and, when it moved, the returned
//! expiry.

mod codec;
mod rule;
mod window;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod prop_tests;

pub use rule::{Rule, StateError, MAX_COST, MAX_LIMIT, MAX_WINDOW_MS, MIN_WINDOW_MS};
// The glue uses `check_and_store`; `check`, `expire_at_ms` and `validate`
// are the plain forms the tests reach.
pub use window::{
    check, check_and_store, expire_at_ms, info, peek, record, validate, Decision, Effect, Expiry,
    Info,
};
