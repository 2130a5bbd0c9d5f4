//! The thin layer between Redis and the command handlers: argument access,
//! error replies, registration with honest flags and key specs, and the panic
//! guard every entry point runs behind.

use std::ffi::{c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::raw;

use crate::error::{sanitize_error, CmdError, CmdResult, INTERNAL_ERROR};
use crate::redis::reply::{Finish, Reply};
use crate::redis::store::Mode;

/// The arguments of one call, borrowed from Redis for its duration, and the
/// table entry of the command called.
pub struct Args<'a> {
    argv: &'a [*mut raw::RedisModuleString],
    def: &'static CommandDef,
}

impl<'a> Args<'a> {
    pub fn len(&self) -> usize {
        self.argv.len()
    }

    /// What the command does to the keys it builds, as its table entry
    /// declares it to Redis: handlers open and check their keys with this,
    /// so the key spec and the ACL check cannot disagree.
    pub fn access(&self) -> KeyAccess {
        self.def.keys
    }

    /// The table's arity, as Redis counts it. Redis checks it before calling
    /// the module from clients, MULTI, scripts and `RM_Call`, but not when it
    /// loads an AOF: checked here too, so no handler sees fewer arguments
    /// than its entry declares.
    fn check_arity(&self) -> CmdResult {
        let argc = i64::try_from(self.argv.len()).unwrap_or(i64::MAX);
        let arity = i64::from(self.def.arity);
        let fits = if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        };
        if fits {
            Ok(())
        } else {
            Err(CmdError::WrongArity)
        }
    }

    /// The raw Redis string at `i`, for APIs that take one (replication, key names).
    pub fn raw(&self, i: usize) -> Option<*mut raw::RedisModuleString> {
        self.argv.get(i).copied()
    }

    /// The bytes of argument `i` (0 is the command name); empty when out of range.
    pub fn bytes(&self, i: usize) -> &'a [u8] {
        match self.argv.get(i) {
            Some(&s) => string_bytes(s),
            None => &[],
        }
    }

    /// Argument `i` as UTF-8 text, or an error naming the argument.
    pub fn text(&self, i: usize, what: &str) -> Result<&'a str, CmdError> {
        std::str::from_utf8(self.bytes(i))
            .map_err(|_| CmdError::msg(format!("ERR {what} must be valid UTF-8")))
    }
}

/// Bytes of a Redis string. Valid while the string lives (the call's duration for argv).
pub fn string_bytes<'a>(s: *mut raw::RedisModuleString) -> &'a [u8] {
    let mut len: usize = 0;
    // SAFETY: `s` is a live RedisModuleString handed to us by Redis; StringPtrLen
    // returns a pointer to its buffer of `len` bytes, which outlives this call.
    unsafe {
        let ptr =
            raw::RedisModule_StringPtrLen.expect("StringPtrLen is in every Redis")(s, &mut len);
        if ptr.is_null() || len == 0 {
            return &[];
        }
        std::slice::from_raw_parts(ptr.cast::<u8>(), len)
    }
}

/// Replies with `err`. Wrong arity uses Redis's own message.
pub fn reply_error(ctx: *mut raw::RedisModuleCtx, err: &CmdError) {
    // SAFETY: ctx is the live context of the current call.
    unsafe {
        match err {
            CmdError::WrongArity => {
                raw::RedisModule_WrongArity.expect("WrongArity is in every Redis")(ctx);
            }
            other => {
                let text = sanitize_error(&other.to_string());
                raw::RedisModule_ReplyWithError.expect("ReplyWithError is in every Redis")(
                    ctx,
                    text.as_ptr(),
                );
            }
        }
    }
}

pub type Handler = fn(&Reply, &Args) -> CmdResult;

/// Runs a handler behind the panic guard: a panic becomes an error reply and a
/// log line instead of aborting the server. Maps and arrays are collected and
/// sent only when the handler succeeds (see `Reply::finish`), so a failure or
/// a panic half-way through a reply cannot leave a partial one on the
/// connection: the client always gets exactly one well-formed reply.
pub fn dispatch(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
    def: &'static CommandDef,
) -> c_int {
    let argv: &[*mut raw::RedisModuleString] = if argv.is_null() || argc <= 0 {
        &[]
    } else {
        // SAFETY: Redis passes `argc` valid string pointers at `argv` for this call.
        unsafe { std::slice::from_raw_parts(argv, argc as usize) }
    };
    let args = Args { argv, def };
    let reply = Reply::new(ctx);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        args.check_arity()?;
        (def.handler)(&reply, &args)
    }));
    // Only logging and replying are left; guard them too, so that nothing
    // can unwind into Redis.
    let _ = catch_unwind(AssertUnwindSafe(|| conclude(ctx, &args, &reply, outcome)));
    raw::Status::Ok as c_int
}

fn conclude(
    ctx: *mut raw::RedisModuleCtx,
    args: &Args,
    reply: &Reply,
    outcome: std::thread::Result<CmdResult>,
) {
    let command = || {
        let name = args.bytes(0);
        String::from_utf8_lossy(&name[..name.len().min(64)]).into_owned()
    };
    let error = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => {
            crate::redis::log::warning(
                ctx,
                &format!(
                    "cachekit: internal error (panic) in {}; the reason is on the previous line",
                    command()
                ),
            );
            Some(INTERNAL_ERROR)
        }
    };
    match (reply.finish(error.is_none()), error) {
        (Finish::Sent, _) => {}
        (Finish::Nothing, Some(e)) => reply_error(ctx, &e),
        (Finish::Nothing, None) => {
            crate::redis::log::warning(
                ctx,
                &format!(
                    "cachekit: internal error: {} wrote no complete reply",
                    command()
                ),
            );
            reply_error(ctx, &INTERNAL_ERROR);
        }
        (Finish::AlreadySent, e) => {
            let why = e.map_or_else(|| "a second reply".to_string(), |e| e.to_string());
            crate::redis::log::warning(
                ctx,
                &format!(
                    "cachekit: internal error: {} failed after its reply was sent ({why}); the extra was dropped",
                    command()
                ),
            );
        }
    }
}

/// How a command is declared to Redis.
pub struct CommandDef {
    pub name: &'static str,
    /// `RM_CreateCommand` flags, e.g. "write deny-oom fast".
    pub flags: &'static str,
    /// Arity as Redis counts it: N exact, -N at least N.
    pub arity: c_int,
    /// Index of the argument that routes the command (cluster slot), 0 for none.
    /// Declared as a NOT_KEY key spec: clients and the cluster route by it,
    /// while ACL is checked by the module on the keys it builds.
    pub route_arg: c_int,
    /// True when `route_arg` is itself the real key (internal commands).
    pub route_is_key: bool,
    /// What the command does to the keys it builds, for its key spec.
    pub keys: KeyAccess,
    /// Time complexity, as `COMMAND DOCS` shows it.
    pub complexity: &'static str,
    /// The arguments after the name, as `COMMAND DOCS` shows them.
    pub args: &'static [crate::redis::command_docs::Arg],
    pub summary: &'static str,
    pub handler: Handler,
}

/// The extern "C" function Redis calls for a command.
pub type EntryPoint =
    extern "C" fn(*mut raw::RedisModuleCtx, *mut *mut raw::RedisModuleString, c_int) -> c_int;

/// A command as registered: its table entry and its entry point, which runs
/// the entry's handler through [`dispatch`]. Made by [`command!`].
pub struct Command {
    pub def: &'static CommandDef,
    pub entry: EntryPoint,
}

/// What a command does to its keys, in the terms of Redis's key specs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAccess {
    /// Reads and returns them (`GET`: RO, ACCESS).
    Read,
    /// Changes what is there without returning it (`RATELIMIT.RECORD`:
    /// RW, UPDATE).
    Update,
    /// Changes what is there and returns what it read (`INCR`,
    /// `RATELIMIT.CHECK`: RW, ACCESS, UPDATE).
    ReadUpdate,
    /// Replaces them without reading (`SET`: OW, UPDATE).
    Overwrite,
    /// Deletes them (`DEL`: RM, DELETE).
    Delete,
}

impl KeyAccess {
    /// How a handler opens its keys for this access: only reads open them
    /// read-only.
    pub fn mode(self) -> Mode {
        match self {
            KeyAccess::Read => Mode::Read,
            KeyAccess::Update
            | KeyAccess::ReadUpdate
            | KeyAccess::Overwrite
            | KeyAccess::Delete => Mode::Write,
        }
    }

    /// Key spec flags. With no access kind (ACCESS, UPDATE, ...) Redis's ACL
    /// would only match the key name and let a read-only pattern (%R~) write.
    fn spec_flags(self) -> u64 {
        let flags = match self {
            KeyAccess::Read => raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
            KeyAccess::Update => raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_UPDATE,
            KeyAccess::ReadUpdate => {
                raw::REDISMODULE_CMD_KEY_RW
                    | raw::REDISMODULE_CMD_KEY_ACCESS
                    | raw::REDISMODULE_CMD_KEY_UPDATE
            }
            KeyAccess::Overwrite => raw::REDISMODULE_CMD_KEY_OW | raw::REDISMODULE_CMD_KEY_UPDATE,
            KeyAccess::Delete => raw::REDISMODULE_CMD_KEY_RM | raw::REDISMODULE_CMD_KEY_DELETE,
        };
        u64::from(flags)
    }
}

/// A [`Command`] from a [`CommandDef`]: the entry point it makes passes the
/// entry to [`dispatch`], so the handler runs with the arity and key access
/// that the entry declares to Redis.
macro_rules! command {
    ($def:expr) => {{
        static DEF: $crate::redis::command::CommandDef = $def;
        extern "C" fn entry(
            ctx: *mut redis_module::raw::RedisModuleCtx,
            argv: *mut *mut redis_module::raw::RedisModuleString,
            argc: std::ffi::c_int,
        ) -> std::ffi::c_int {
            $crate::redis::command::dispatch(ctx, argv, argc, &DEF)
        }
        $crate::redis::command::Command { def: &DEF, entry }
    }};
}
pub(crate) use command;

/// Registers `command` with Redis, including its key spec and arity.
pub fn register(ctx: *mut raw::RedisModuleCtx, command: &Command) -> Result<(), String> {
    let def = command.def;
    let name = CString::new(def.name).map_err(|_| format!("bad command name {}", def.name))?;
    let flags = CString::new(def.flags).map_err(|_| format!("bad flags for {}", def.name))?;
    let key = def.route_arg;
    // SAFETY: called from OnLoad with the load context; the strings outlive the call.
    let status = unsafe {
        raw::RedisModule_CreateCommand.ok_or("no CreateCommand")?(
            ctx,
            name.as_ptr(),
            Some(command.entry),
            flags.as_ptr(),
            key,
            key,
            if key > 0 { 1 } else { 0 },
        )
    };
    if status != raw::Status::Ok as c_int {
        return Err(format!("could not create command {}", def.name));
    }
    set_command_info(ctx, def, &name)
}

fn set_command_info(
    ctx: *mut raw::RedisModuleCtx,
    def: &CommandDef,
    name: &CString,
) -> Result<(), String> {
    let Some(set_info) = (unsafe { raw::RedisModule_SetCommandInfo }) else {
        // Older servers: the legacy key range from CreateCommand still routes.
        return Ok(());
    };
    // SAFETY: the command was just created under this name.
    let command =
        unsafe { raw::RedisModule_GetCommand.ok_or("no GetCommand")?(ctx, name.as_ptr()) };
    if command.is_null() {
        return Err(format!("command {} not found after creation", def.name));
    }
    // The C header keeps its version struct static; these are its version-1 values.
    let version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
    };
    let summary = CString::new(def.summary).map_err(|_| "bad summary".to_string())?;
    let since = c"0.1.0";
    let complexity = CString::new(def.complexity).map_err(|_| "bad complexity".to_string())?;
    // SAFETY: an all-zero key spec is the array terminator the API expects.
    let mut specs: [raw::RedisModuleCommandKeySpec; 2] = unsafe { std::mem::zeroed() };
    if def.route_arg > 0 {
        let mut flags = def.keys.spec_flags();
        if !def.route_is_key {
            flags |= raw::REDISMODULE_CMD_KEY_NOT_KEY as u64;
        }
        specs[0].flags = flags;
        specs[0].begin_search_type =
            raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
        specs[0].bs.index.pos = def.route_arg;
        specs[0].find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
        specs[0].fk.range.lastkey = 0;
        specs[0].fk.range.keystep = 1;
        specs[0].fk.range.limit = 0;
    }
    let mut args = crate::redis::command_docs::RawArgs::new(def.args);
    let info = raw::RedisModuleCommandInfo {
        version: &version,
        summary: summary.as_ptr(),
        complexity: complexity.as_ptr(),
        since: since.as_ptr(),
        history: std::ptr::null_mut(),
        tips: std::ptr::null(),
        arity: def.arity,
        key_specs: if def.route_arg > 0 {
            specs.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        },
        args: args.ptr(),
    };
    // SAFETY: `info` and everything it points to live until the call returns;
    // Redis copies what it keeps.
    let status = unsafe { set_info(command, &info as *const _ as *mut _) };
    if status != raw::Status::Ok as c_int {
        return Err(format!("could not set command info of {}", def.name));
    }
    Ok(())
}
