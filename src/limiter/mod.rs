//! Exact sliding-window rate limiter: decisions and the stored encoding.
//!
//! Pure logic with no Redis dependency; the command glue reads the key's
//! string value, calls [`check`] (or [`record`] on replicas / AOF replay),
//! writes the returned bytes and sets the expiry from [`expire_at_ms`].

mod codec;
mod window;

#[cfg(test)]
mod model_tests;

pub use window::{
    check, expire_at_ms, info, peek, record, Decision, Rule, StateError, MAX_COST, MAX_LIMIT,
    MAX_WINDOW_MS, MIN_WINDOW_MS,
};
