//! The Redis glue: everything that talks to the server through
//! `redis_module` and its raw API. The module entry point (load, unload,
//! the allocator), reply writing, key access, ACL checks, configs, command
//! registration and docs, logging and the command handlers live here; the
//! pure logic they call (limiter, policies, key schemes, JSON) lives outside
//! this folder and knows nothing of Redis.

/// The raw server function `$f`, present on every supported server (checked
/// once at load by `missing_api`). Defined before the submodules so that
/// every one of them can use it.
macro_rules! rm {
    ($f:ident) => {
        redis_module::raw::$f.expect(concat!(
            stringify!($f),
            " was checked at load (missing_api)"
        ))
    };
}

pub mod acl;
pub mod command;
pub mod command_docs;
pub mod commands;
pub mod config;
pub mod log;
pub mod purge;
pub mod reply;
pub mod server;
pub mod store;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_int;
use std::sync::atomic::Ordering;

use redis_module::alloc::RedisAlloc;
use redis_module::{raw, redis_module, Context, RedisString, Status};

use crate::stats;

/// The module's global allocator: Redis's once the server has initialised
/// the module (`RedisModule_Init` sets `RedisModule_Alloc` before any code
/// of the module allocates), so the memory the module holds shows in
/// `INFO memory` and counts towards `maxmemory`; the system allocator in a
/// process with no server, i.e. the unit and integration tests that link the
/// library, where `RedisAlloc` would abort. In a given process the choice
/// never changes after the first allocation: tests never initialise a module
/// and the server initialises it before anything is allocated, so memory is
/// always freed by the allocator that gave it.
pub struct ModuleAlloc;

// SAFETY: both allocators uphold GlobalAlloc's contract, and a block is
// always freed by the one that allocated it (see above).
unsafe impl GlobalAlloc for ModuleAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: reading a function pointer that only RedisModule_Init writes.
        if unsafe { raw::RedisModule_Alloc }.is_some() {
            // SAFETY: forwarded with the caller's layout.
            unsafe { RedisAlloc.alloc(layout) }
        } else {
            // SAFETY: forwarded with the caller's layout.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as in `alloc`; `ptr` came from the same allocator.
        if unsafe { raw::RedisModule_Free }.is_some() {
            // SAFETY: `ptr` was allocated by RedisAlloc with `layout`.
            unsafe { RedisAlloc.dealloc(ptr, layout) }
        } else {
            // SAFETY: `ptr` was allocated by System with `layout`.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}

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
        RedisModule_CallReplyStringPtr,
        RedisModule_CallReplyType,
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
    for cmd in commands::COMMANDS {
        command::register(ctx.ctx, cmd)?;
    }
    #[cfg(feature = "panic-test")]
    command::register(ctx.ctx, &commands::debugpanic::COMMAND)?;
    // SAFETY: OnLoad context; replaces the crate's default info callback.
    unsafe {
        if let Some(register_info) = raw::RedisModule_RegisterInfoFunc {
            register_info(ctx.ctx, Some(guarded_info));
        }
    }
    // Last: Redis 7.0 keeps server-event listeners of a module whose load
    // fails. The cron listener is the last step that can fail; the role
    // listener cannot.
    purge::start(ctx.ctx)?;
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

/// MODULE UNLOAD: refused while any client is inside `MULTI`. Redis keeps
/// the queued commands of a transaction as pointers to their handlers: a
/// cachekit command queued before the unload and run by `EXEC` after it
/// would jump into the unmapped library and crash the server. Redis does
/// not guard this, so the module refuses its own unload (with a log line
/// saying why) until no transaction is open.
///
/// Otherwise Redis removes the commands, configs, INFO callback and the
/// cron listener of the background cleanup itself; the module starts no
/// thread and no timer. What is left is the
/// strings kept for replication and for CONFIG GET, and the panic hook,
/// which lives in the copy of the Rust standard library inside this library
/// and so concerns only this module: put the default back so none of our
/// code runs after the unload, even if the library stays mapped.
fn unload(ctx: &Context) -> Status {
    match server::clients_in_multi(ctx.ctx) {
        Some(0) => {}
        Some(n) => {
            log::warning(
                ctx.ctx,
                &format!(
                    "cachekit: MODULE UNLOAD refused: {n} client(s) inside MULTI; an EXEC after the unload would run commands of an unloaded module and crash the server. Retry once the transactions have ended (EXEC or DISCARD)"
                ),
            );
            return Status::Err;
        }
        None => {
            log::warning(
                ctx.ctx,
                "cachekit: MODULE UNLOAD refused: CLIENT LIST could not be read, so open MULTI transactions cannot be ruled out (an EXEC after the unload would crash the server)",
            );
            return Status::Err;
        }
    }
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
    allocator: (ModuleAlloc, ModuleAlloc),
    data_types: [],
    init: init,
    deinit: unload,
    commands: [],
}
