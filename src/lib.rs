//! cachekit: an application's cache key schemes, statistics and an exact
//! sliding-window rate limiter as native Redis commands.

mod acl;
mod args;
mod command;
mod command_docs;
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

use std::ffi::c_int;
use std::sync::atomic::Ordering;

use redis_module::{raw, redis_module, Context, RedisString, Status};

use crate::reply::rm;

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
            // Not the crate's logger: it passes the text as a format string.
            log::warning(ctx.ctx, &format!("cachekit: not loaded: {e}"));
            // Nothing of ours may run once Redis has given up on the module.
            drop(std::panic::take_hook());
            Status::Err
        }
    }
}

/// The server API the command paths call through `rm!`: all present on
/// Redis 7.0 and Valkey 8. Checked once here, so those calls cannot fail later.
fn missing_api() -> Option<&'static str> {
    macro_rules! require {
        ($($f:ident),* $(,)?) => {
            // SAFETY: reading function pointers RedisModule_Init has set.
            $(if unsafe { raw::$f }.is_none() {
                return Some(stringify!($f));
            })*
        };
    }
    require!(
        RedisModule_ACLCheckCommandPermissions,
        RedisModule_ACLCheckKeyPermissions,
        RedisModule_Call,
        RedisModule_CloseKey,
        RedisModule_CreateString,
        RedisModule_DeleteKey,
        RedisModule_FreeCallReply,
        RedisModule_FreeModuleUser,
        RedisModule_FreeServerInfo,
        RedisModule_FreeString,
        RedisModule_GetAbsExpire,
        RedisModule_GetClientId,
        RedisModule_GetClientUserNameById,
        RedisModule_GetContextFlags,
        RedisModule_GetCurrentUserName,
        RedisModule_GetExpire,
        RedisModule_GetLFU,
        RedisModule_GetModuleUserFromUserName,
        RedisModule_GetServerInfo,
        RedisModule_InfoAddFieldULongLong,
        RedisModule_InfoAddSection,
        RedisModule_KeyType,
        RedisModule_Log,
        RedisModule_Milliseconds,
        RedisModule_NotifyKeyspaceEvent,
        RedisModule_OpenKey,
        RedisModule_Replicate,
        RedisModule_ReplicateVerbatim,
        RedisModule_ReplyWithArray,
        RedisModule_ReplyWithDouble,
        RedisModule_ReplyWithError,
        RedisModule_ReplyWithLongLong,
        RedisModule_ReplyWithMap,
        RedisModule_ReplyWithNull,
        RedisModule_ReplyWithSimpleString,
        RedisModule_ReplyWithStringBuffer,
        RedisModule_ServerInfoGetFieldC,
        RedisModule_ServerInfoGetFieldUnsigned,
        RedisModule_SignalModifiedKey,
        RedisModule_SetAbsExpire,
        RedisModule_SetExpire,
        RedisModule_SetModuleOptions,
        RedisModule_SetLFU,
        RedisModule_StringDMA,
        RedisModule_StringPtrLen,
        RedisModule_StringSet,
        RedisModule_StringTruncate,
        RedisModule_ValueLength,
        RedisModule_WrongArity,
    );
    None
}

fn load(ctx: &Context, args: &[RedisString]) -> Result<(), String> {
    if let Some(name) = missing_api() {
        return Err(format!(
            "this server lacks {name}; cachekit needs Redis 7.0 or later"
        ));
    }
    install_panic_hook();
    // Keys are signalled modified when they really changed (store::Key),
    // not each time one is opened for writing.
    // SAFETY: OnLoad context.
    unsafe {
        rm!(RedisModule_SetModuleOptions)(
            ctx.ctx,
            raw::REDISMODULE_OPTION_NO_IMPLICIT_SIGNAL_MODIFIED as c_int,
        );
    }
    // The library may stay mapped after MODULE UNLOAD (glibc keeps a library
    // with thread-local destructors), so a reload finds the old statics:
    // start the counters from zero as on a fresh start. Configs are reset by
    // their registration below.
    stats::COUNTERS.reset();
    let cluster = ctx.get_flags().bits() as u32 & raw::REDISMODULE_CTX_FLAGS_CLUSTER != 0;
    config::CLUSTER_MODE.store(cluster, Ordering::Relaxed);
    let load_args = config::LoadArgs::parse(args)?;
    config::register(ctx, &load_args)?;
    for def in commands::COMMANDS {
        command::register(ctx.ctx, def)?;
    }
    #[cfg(feature = "panic-test")]
    command::register(ctx.ctx, &command::panic_test::DEF)?;
    // SAFETY: OnLoad context; replaces the crate's default info callback.
    unsafe {
        if let Some(register_info) = raw::RedisModule_RegisterInfoFunc {
            register_info(ctx.ctx, Some(guarded_info));
        }
    }
    // Last: Redis 7.0 keeps server-event listeners of a module whose load fails.
    acl::track_role(ctx.ctx);
    Ok(())
}

/// `INFO` calls this outside any command: a panic must not unwind into Redis.
extern "C" fn guarded_info(info: *mut raw::RedisModuleInfoCtx, for_crash_report: c_int) {
    let outcome = std::panic::catch_unwind(|| commands::stats::info(info, for_crash_report));
    if outcome.is_err() {
        log::warning(
            std::ptr::null_mut(),
            "cachekit: internal error (panic) in the INFO section; the reason is on the previous line",
        );
    }
}

/// MODULE UNLOAD: Redis removes the commands, configs and INFO callback
/// itself; the module starts no thread and no timer. What is left is the
/// strings kept for replication and for CONFIG GET, and the panic hook,
/// which lives in the copy of the Rust standard library inside this library
/// and so concerns only this module: put the default back so none of our
/// code runs after the unload, even if the library stays mapped.
fn unload(_ctx: &Context) -> Status {
    commands::ratelimit::release_record_strings();
    config::POLICIES.release();
    drop(std::panic::take_hook());
    Status::Ok
}

/// Panics are caught per command; this makes sure the reason reaches the log.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        // One log line: the message follows the location on a new line.
        let text = format!("cachekit: panic: {info}").replace('\n', " ");
        log::warning(std::ptr::null_mut(), &text);
    }));
}

redis_module! {
    name: "cachekit",
    version: 1,
    allocator: (ModuleAllocator, MODULE_ALLOCATOR),
    data_types: [],
    init: init,
    deinit: unload,
    commands: [],
}
