//! cachekit: an application's cache key schemes, statistics and an exact
//! sliding-window rate limiter as native Redis commands.
//!
//! The pure logic is in the top-level modules, with no Redis dependency:
//! argument parsing ([`args`]), errors ([`error`]), key schemes ([`keys`]),
//! the table of cache kinds
//! ([`kinds`]), JSON checks ([`json_shape`], [`pyjson`]), float32 vectors
//! ([`vector`]), rate-limit policies
//! ([`policy`]), the limiter ([`limiter`]) and the statistics counters
//! ([`stats`]). Everything that talks to Redis is under `redis/`.

pub mod args;
pub mod error;
pub mod json_shape;
pub mod keys;
pub mod kinds;
pub mod limiter;
pub mod policy;
pub mod pyjson;
pub mod stats;
pub mod vector;

mod redis;
