//! cachekit: an application's cache key schemes, statistics and an exact
//! sliding-window rate limiter as native Redis commands.

mod acl;
mod args;
mod command;
mod commands;
mod config;
mod json_shape;
mod keys;
mod limiter;
mod log;
mod policy;
mod pyjson;
mod reply;
mod stats;
mod store;

use std::sync::atomic::Ordering;

use redis_module::{raw, redis_module, Context, RedisString, Status};

#[cfg(not(test))]
type ModuleAllocator = redis_module::alloc::RedisAlloc;
#[cfg(not(test))]
const MODULE_ALLOCATOR: ModuleAllocator = redis_module::alloc::RedisAlloc;
// Unit tests run without a server: there is no Redis allocator to call.
#[cfg(test)]
type ModuleAllocator = std::alloc::System;
#[cfg(test)]
const MODULE_ALLOCATOR: ModuleAllocator = std::alloc::System;

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    match load(ctx, args) {
        Ok(()) => Status::Ok,
        Err(e) => {
            ctx.log_warning(&format!("cachekit: not loaded: {e}"));
            Status::Err
        }
    }
}

fn load(ctx: &Context, args: &[RedisString]) -> Result<(), String> {
    install_panic_hook();
    let cluster = ctx.get_flags().bits() as u32 & raw::REDISMODULE_CTX_FLAGS_CLUSTER != 0;
    config::CLUSTER_MODE.store(cluster, Ordering::Relaxed);
    let load_args = config::LoadArgs::parse(args)?;
    config::register(ctx, &load_args)?;
    for def in commands::COMMANDS {
        command::register(ctx.ctx, def)?;
    }
    // SAFETY: OnLoad context; replaces the crate's default info callback.
    unsafe {
        if let Some(register_info) = raw::RedisModule_RegisterInfoFunc {
            register_info(ctx.ctx, Some(commands::stats::info));
        }
    }
    Ok(())
}

/// Panics are caught per command; this makes sure the reason reaches the log.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        log::warning(std::ptr::null_mut(), &format!("cachekit: panic: {info}"));
    }));
}

redis_module! {
    name: "cachekit",
    version: 1,
    allocator: (ModuleAllocator, MODULE_ALLOCATOR),
    data_types: [],
    init: init,
    commands: [],
}
