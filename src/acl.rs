//! ACL checks on the keys the module builds. The routing argument is declared
//! NOT_KEY, so Redis checks no key for these commands: the module must.

use std::ffi::c_int;

use redis_module::raw;

use crate::command::CmdError;
use crate::reply::rm;
use crate::store::OwnedString;

#[derive(Debug, Clone, Copy)]
pub enum Access {
    Read,
    Write,
    Delete,
}

/// The user of the current call. `None` when there is no client user (AOF
/// loading, the replication link): nothing to check then.
pub struct CurrentUser(*mut raw::RedisModuleUser);

impl CurrentUser {
    pub fn of(ctx: *mut raw::RedisModuleCtx) -> Option<CurrentUser> {
        // SAFETY: live context; the name is freed below, the user in Drop.
        unsafe {
            let name = rm!(RedisModule_GetCurrentUserName)(ctx);
            if name.is_null() {
                return None;
            }
            let user = rm!(RedisModule_GetModuleUserFromUserName)(name);
            rm!(RedisModule_FreeString)(std::ptr::null_mut(), name);
            if user.is_null() {
                return None;
            }
            Some(CurrentUser(user))
        }
    }

    pub fn check(&self, key: &OwnedString, access: Access) -> Result<(), CmdError> {
        let flags = match access {
            Access::Read => raw::REDISMODULE_CMD_KEY_ACCESS,
            Access::Write => raw::REDISMODULE_CMD_KEY_INSERT | raw::REDISMODULE_CMD_KEY_UPDATE,
            Access::Delete => raw::REDISMODULE_CMD_KEY_DELETE,
        };
        // SAFETY: live user and key name.
        let status =
            unsafe { rm!(RedisModule_ACLCheckKeyPermissions)(self.0, key.ptr(), flags as c_int) };
        if status == raw::REDISMODULE_OK as c_int {
            return Ok(());
        }
        let bytes = key.bytes();
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(128)]).into_owned();
        Err(CmdError::msg(format!(
            "NOPERM this user has no permissions to access the '{shown}' key"
        )))
    }
}

impl Drop for CurrentUser {
    fn drop(&mut self) {
        // SAFETY: obtained from GetModuleUserFromUserName, freed once.
        unsafe {
            rm!(RedisModule_FreeModuleUser)(self.0);
        }
    }
}

/// Checks `access` on each key for the current user.
pub fn check_keys(
    ctx: *mut raw::RedisModuleCtx,
    keys: &[(&OwnedString, Access)],
) -> Result<(), CmdError> {
    if let Some(user) = CurrentUser::of(ctx) {
        for (key, access) in keys {
            user.check(key, *access)?;
        }
    }
    Ok(())
}
