//! Background memory cleanup (the seed's `CacheCleanupService`): every
//! `purge-interval` seconds, when `used_memory` is above `purge-threshold`
//! percent of `maxmemory`, run `MEMORY PURGE` and count the run.
//!
//! The clock is the server's own cron (`RedisModuleEvent_CronLoop`, `hz`
//! times a second), not a module timer: Redis refuses `MODULE UNLOAD` while
//! a module timer is pending, and checks that before the module's
//! `OnUnload` could stop it, so a self-rearming timer would make the module
//! impossible to unload. A cron listener is dropped by Redis itself on
//! unload. Each cron tick costs two atomic loads until an interval has
//! passed; `CONFIG SET` of either config applies from the next tick.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use redis_module::raw;

use crate::redis::{log, server, store};
use crate::stats;

pub static PURGE_THRESHOLD: AtomicI64 = AtomicI64::new(80);
pub static PURGE_INTERVAL: AtomicI64 = AtomicI64::new(3600);

/// Background `MEMORY PURGE` runs since the module was loaded.
pub static RUNS: AtomicU64 = AtomicU64::new(0);
/// Unix seconds of the last run, 0 if none.
pub static LAST_RUN: AtomicI64 = AtomicI64::new(0);
/// Unix ms of the last check (0: not started).
static LAST_CHECK_MS: AtomicI64 = AtomicI64::new(0);

/// Starts counting from zero and subscribes to the server's cron. Called
/// last at load: Redis 7.0 keeps the listeners of a module whose load fails.
pub fn start(ctx: *mut raw::RedisModuleCtx) -> Result<(), String> {
    RUNS.store(0, Ordering::Relaxed);
    LAST_RUN.store(0, Ordering::Relaxed);
    LAST_CHECK_MS.store(store::now_ms(), Ordering::Relaxed);
    let event = raw::RedisModuleEvent {
        id: raw::REDISMODULE_EVENT_CRON_LOOP,
        dataver: 1,
    };
    // SAFETY: OnLoad context; the callback is a plain function that lives
    // as long as the module (Redis drops the subscription on unload).
    let subscribed = unsafe {
        raw::RedisModule_SubscribeToServerEvent.is_some_and(|subscribe| {
            subscribe(ctx, event, Some(cron)) == raw::REDISMODULE_OK as c_int
        })
    };
    if subscribed {
        Ok(())
    } else {
        Err("could not subscribe to the server's cron for the background cleanup".into())
    }
}

extern "C" fn cron(
    ctx: *mut raw::RedisModuleCtx,
    _event: raw::RedisModuleEvent,
    _subevent: u64,
    _data: *mut c_void,
) {
    let outcome = catch_unwind(AssertUnwindSafe(|| tick(ctx)));
    if outcome.is_err() {
        log::warning(
            std::ptr::null_mut(),
            "cachekit: internal error (panic) in the background cleanup; the reason is on the previous line",
        );
    }
}

fn tick(ctx: *mut raw::RedisModuleCtx) {
    let now = store::now_ms();
    let interval_ms = PURGE_INTERVAL.load(Ordering::Relaxed).saturating_mul(1000);
    let last = LAST_CHECK_MS.load(Ordering::Relaxed);
    // A clock stepped backwards starts a new interval rather than waiting it out.
    if now >= last && now - last < interval_ms {
        return;
    }
    LAST_CHECK_MS.store(now, Ordering::Relaxed);
    let threshold = PURGE_THRESHOLD.load(Ordering::Relaxed);
    if threshold <= 0 {
        return;
    }
    let mem = server::memory(ctx);
    if !stats::purge_needed(mem.used, mem.max, threshold) {
        return;
    }
    if server::memory_purge(ctx) {
        RUNS.fetch_add(1, Ordering::Relaxed);
        LAST_RUN.store(now / 1000, Ordering::Relaxed);
    } else {
        log::warning(ctx, "cachekit: background cleanup: MEMORY PURGE failed");
    }
}
