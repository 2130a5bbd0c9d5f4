//! ACL checks on the keys the module builds. The routing argument is declared
//! NOT_KEY, so Redis checks no key for these commands: the module must.
//!
//! Whose permissions apply: the user of the calling client, which is also
//! the caller's user inside MULTI/EXEC and inside a Lua script (the script
//! client runs as its caller). Three kinds of client are not checked.
//! Two replay writes that were checked when they were first made, and Redis
//! checks nothing for them either: the primary's replication link (no user)
//! and the AOF loader (checking its default user would fail to load an AOF
//! whenever the default user is restricted). The third is another module's
//! `RM_Call` without a user: Redis runs it as root, and so does the module.
//!
//! Recognising a replay costs a context-flags call, which Redis makes
//! expensive (it measures memory for the OOM flags). A primary has no
//! replication link, so there the question is asked only after a refusal;
//! on a replica it is asked first. The role is tracked with the server's
//! role-change event.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redis_module::raw;

use crate::error::CmdError;
use crate::redis::command::KeyAccess;
use crate::redis::store::{Key, OwnedString};

/// The user of the current call.
pub struct CurrentUser {
    ctx: *mut raw::RedisModuleCtx,
    user: *mut raw::RedisModuleUser,
}

impl CurrentUser {
    /// `Ok(None)` for the replication link, the AOF loader and any other
    /// client without a user. A named user that cannot be found is refused
    /// rather than let through unchecked.
    pub fn of(ctx: *mut raw::RedisModuleCtx) -> Result<Option<CurrentUser>, CmdError> {
        if MAY_BE_REPLICA.load(Ordering::Relaxed) && replaying(ctx) {
            return Ok(None);
        }
        // SAFETY: live context; the name is freed below, the user in Drop.
        unsafe {
            let name = user_name(ctx)?;
            if name.is_null() {
                return Ok(None);
            }
            let user = rm!(RedisModule_GetModuleUserFromUserName)(name);
            rm!(RedisModule_FreeString)(std::ptr::null_mut(), name);
            if user.is_null() {
                if replaying(ctx) {
                    return Ok(None);
                }
                return Err(CmdError::Static(
                    "NOPERM the current user no longer exists, so its key permissions cannot be checked",
                ));
            }
            Ok(Some(CurrentUser { ctx, user }))
        }
    }

    /// Checks `access` on `key`. Writes that do not read (`Overwrite`,
    /// `Update`) may create the key as well as change it.
    pub fn check(&self, key: &OwnedString, access: KeyAccess) -> Result<(), CmdError> {
        let flags = match access {
            KeyAccess::Read => raw::REDISMODULE_CMD_KEY_ACCESS,
            KeyAccess::Overwrite | KeyAccess::Update => {
                raw::REDISMODULE_CMD_KEY_INSERT | raw::REDISMODULE_CMD_KEY_UPDATE
            }
            KeyAccess::ReadUpdate => {
                raw::REDISMODULE_CMD_KEY_ACCESS
                    | raw::REDISMODULE_CMD_KEY_INSERT
                    | raw::REDISMODULE_CMD_KEY_UPDATE
            }
            KeyAccess::Delete => raw::REDISMODULE_CMD_KEY_DELETE,
        };
        // SAFETY: live user and key name.
        let status = unsafe {
            rm!(RedisModule_ACLCheckKeyPermissions)(self.user, key.ptr(), flags as c_int)
        };
        // A replay was checked when it was first made; asking only after a
        // refusal keeps the context-flags call off the common path.
        if status == raw::REDISMODULE_OK as c_int || replaying(self.ctx) {
            return Ok(());
        }
        self.log_denied(key);
        let bytes = key.bytes();
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(128)]).into_owned();
        let what = match access {
            KeyAccess::Read => "read",
            KeyAccess::Overwrite | KeyAccess::Update => "write",
            KeyAccess::ReadUpdate => "read and write",
            KeyAccess::Delete => "delete",
        };
        Err(CmdError::msg(format!(
            "NOPERM this user has no permissions to {what} the '{shown}' key"
        )))
    }

    /// Records the denial in `ACL LOG`, as Redis does for its own key checks.
    fn log_denied(&self, key: &OwnedString) {
        // SAFETY: live context, user and key name; Redis copies the name.
        unsafe {
            if let Some(add) = raw::RedisModule_ACLAddLogEntry {
                add(
                    self.ctx,
                    self.user,
                    key.ptr(),
                    raw::RedisModuleACLLogEntryReason_REDISMODULE_ACL_LOG_KEY,
                );
            }
        }
    }
}

impl Drop for CurrentUser {
    fn drop(&mut self) {
        // SAFETY: obtained from GetModuleUserFromUserName, freed once.
        unsafe {
            rm!(RedisModule_FreeModuleUser)(self.user);
        }
    }
}

/// The name of the calling client's user (to be freed), or NULL for a
/// client that runs as root.
///
/// A connection is asked by its id, which is safe for any client (and
/// remembered: see [`CONNECTIONS`]). The other clients have no id Redis
/// can look up: the AOF loader and the replication link (replays), a
/// script's own client (it carries the user of the script's caller), and
/// the client of another module's `RM_Call`, which carries the calling
/// user with the `C` flag and none (root) without. Reading the user of a client that has none crashes Redis 7.0
/// and Valkey 8, and nothing else tells these clients apart than this
/// probe: `RM_Call` of `HELLO` with the `C` (check ACL as the client's
/// user) and `S` (script mode) flags. For a client without a user it stops
/// at the first check, with ENOTSUP; for any other it stops at the second,
/// with ESPIPE, because `HELLO` may not run from scripts. So `HELLO` never
/// runs: nothing changes, nothing is counted in `INFO commandstats`, and
/// as `HELLO` needs no authentication the ACL check between never adds to
/// `ACL LOG`.
///
/// # Safety
/// `ctx` is the live context of the current command.
unsafe fn user_name(
    ctx: *mut raw::RedisModuleCtx,
) -> Result<*mut raw::RedisModuleString, CmdError> {
    let id = rm!(RedisModule_GetClientId)(ctx);
    let seen = &CONNECTIONS[(id % CONNECTIONS.len() as u64) as usize];
    if id != 0 && seen.load(Ordering::Relaxed) == id {
        return Ok(rm!(RedisModule_GetCurrentUserName)(ctx));
    }
    let name = rm!(RedisModule_GetClientUserNameById)(ctx, id);
    if !name.is_null() {
        seen.store(id, Ordering::Relaxed);
        return Ok(name);
    }
    if replaying(ctx) {
        return Ok(std::ptr::null_mut());
    }
    // `AUTH` has the same two properties, for a server where
    // `rename-command` renamed or disabled `HELLO` (ENOENT); its argument
    // only satisfies its arity (`HELLO`'s format takes none).
    for (command, args) in [(c"HELLO", c"CS"), (c"AUTH", c"CSc")] {
        let probe = rm!(RedisModule_Call)(ctx, command.as_ptr(), args.as_ptr(), c"-".as_ptr());
        if !probe.is_null() {
            rm!(RedisModule_FreeCallReply)(probe);
            return Ok(rm!(RedisModule_GetCurrentUserName)(ctx));
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(ENOTSUP) => return Ok(std::ptr::null_mut()),
            Some(ESPIPE) => return Ok(rm!(RedisModule_GetCurrentUserName)(ctx)),
            Some(ENOENT) => continue,
            // Any user may run these: another refusal leaves the user
            // unknown, and unknown is not let through.
            _ => break,
        }
    }
    Err(CmdError::Static(
        "NOPERM the calling user could not be determined, so its key permissions cannot be checked",
    ))
}

/// Ids of clients Redis has found by id, i.e. connections, which always
/// have a user (the replication link is recognised before this is asked).
/// Client ids are never reused, so for these the user is read directly,
/// without the lookup by id and its extra allocation. A slot holds the last
/// id that hashed to it; a stale or overwritten slot only means one more
/// lookup.
static CONNECTIONS: [AtomicU64; 1024] = [const { AtomicU64::new(0) }; 1024];

/// The errno values `RM_Call` reports, as on Linux, where the servers run.
const ENOTSUP: i32 = 95;
const ESPIPE: i32 = 29;
const ENOENT: i32 = 2;

/// False only while this server is known to be a primary: then no command
/// can come from a replication link. Starts true (the safe answer) until
/// [`track_role`] has read the role.
static MAY_BE_REPLICA: AtomicBool = AtomicBool::new(true);

/// Reads the current role and follows its changes. Without the event the
/// role stays unknown and every call asks Redis, which is only slower.
pub fn track_role(ctx: *mut raw::RedisModuleCtx) {
    let event = raw::RedisModuleEvent {
        id: raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
        dataver: 1,
    };
    // SAFETY: OnLoad context; the callback is a plain function that lives
    // as long as the module.
    let subscribed = unsafe {
        raw::RedisModule_SubscribeToServerEvent.is_some_and(|subscribe| {
            subscribe(ctx, event, Some(role_changed)) == raw::REDISMODULE_OK as c_int
        })
    };
    if subscribed {
        // SAFETY: live OnLoad context.
        let flags = unsafe { rm!(RedisModule_GetContextFlags)(ctx) } as u32;
        MAY_BE_REPLICA.store(
            flags & raw::REDISMODULE_CTX_FLAGS_SLAVE != 0,
            Ordering::Relaxed,
        );
    }
}

extern "C" fn role_changed(
    _ctx: *mut raw::RedisModuleCtx,
    _event: raw::RedisModuleEvent,
    subevent: u64,
    _data: *mut c_void,
) {
    MAY_BE_REPLICA.store(
        subevent != raw::REDISMODULE_EVENT_REPLROLECHANGED_NOW_MASTER,
        Ordering::Relaxed,
    );
}

/// The id Redis gives the AOF loader's client (`CLIENT_ID_AOF`).
const AOF_CLIENT_ID: u64 = u64::MAX;

/// True for the primary's replication link and the AOF loader.
fn replaying(ctx: *mut raw::RedisModuleCtx) -> bool {
    // SAFETY: live context of the current call.
    unsafe {
        let flags = rm!(RedisModule_GetContextFlags)(ctx) as u32;
        flags & raw::REDISMODULE_CTX_FLAGS_REPLICATED != 0
            || rm!(RedisModule_GetClientId)(ctx) == AOF_CLIENT_ID
    }
}

/// Checks `access` on each key for the current user; the first refused key
/// is named in the error and nothing else is checked.
pub fn check_keys(
    ctx: *mut raw::RedisModuleCtx,
    keys: &[(&OwnedString, KeyAccess)],
) -> Result<(), CmdError> {
    if let Some(user) = CurrentUser::of(ctx)? {
        for (key, access) in keys {
            user.check(key, *access)?;
        }
    }
    Ok(())
}

/// Whether the current user may run the command `argv` (name and
/// arguments): for actions of the module that match a built-in command's,
/// such as resetting statistics (`CONFIG RESETSTAT`). A refusal is added to
/// `ACL LOG` under `what`, as Redis logs the commands it refuses. When the
/// server has no command of that name (`rename-command`), the answer is yes.
pub fn may_run(ctx: *mut raw::RedisModuleCtx, argv: &[&str], what: &str) -> Result<bool, CmdError> {
    let Some(user) = CurrentUser::of(ctx)? else {
        return Ok(true);
    };
    let strings: Vec<OwnedString> = argv
        .iter()
        .map(|a| OwnedString::new(a.as_bytes()))
        .collect();
    let mut ptrs: Vec<*mut raw::RedisModuleString> = strings.iter().map(|s| s.ptr()).collect();
    let argc = c_int::try_from(ptrs.len()).unwrap_or(c_int::MAX);
    // SAFETY: live user; `ptrs` holds `argc` live strings for the call.
    let status =
        unsafe { rm!(RedisModule_ACLCheckCommandPermissions)(user.user, ptrs.as_mut_ptr(), argc) };
    // Redis sets errno: EACCES for a refusal, ENOENT when the command is
    // unknown under that name (renamed or disabled with rename-command).
    // Then nothing can be asked, and the command's own permission stands.
    let refused = status != raw::REDISMODULE_OK as c_int
        && std::io::Error::last_os_error().kind() != std::io::ErrorKind::NotFound;
    if !refused || replaying(ctx) {
        return Ok(true);
    }
    let object = OwnedString::new(what.as_bytes());
    // SAFETY: live context, user and string; Redis copies the string.
    unsafe {
        if let Some(add) = raw::RedisModule_ACLAddLogEntry {
            add(
                ctx,
                user.user,
                object.ptr(),
                raw::RedisModuleACLLogEntryReason_REDISMODULE_ACL_LOG_CMD,
            );
        }
    }
    Ok(false)
}

/// Opens one built key after checking the current user may use it as `access`
/// asks (the command's declared access, [`crate::redis::command::Args::access`]),
/// in the mode that access opens keys with.
pub fn open_checked(
    ctx: *mut raw::RedisModuleCtx,
    name: &OwnedString,
    access: KeyAccess,
) -> Result<Key, CmdError> {
    check_keys(ctx, &[(name, access)])?;
    Ok(Key::open(ctx, name, access.mode()))
}
