//! What the module asks of the server itself: its memory figures and its
//! `INFO` output.

use std::ffi::{c_char, c_int, CStr, CString};

use redis_module::raw;

/// What `INFO memory` reports of the server's memory.
pub struct Memory {
    pub used_human: String,
    pub peak_human: String,
    pub used: u64,
    pub max: u64,
}

/// A text field of a server info object; empty when absent.
///
/// # Safety
/// `info` is a live object from `RM_GetServerInfo`.
unsafe fn text_field(info: *mut raw::RedisModuleServerInfoData, field: &CStr) -> String {
    let value: *const c_char = rm!(RedisModule_ServerInfoGetFieldC)(info, field.as_ptr());
    if value.is_null() {
        return String::new();
    }
    CStr::from_ptr(value).to_string_lossy().into_owned()
}

/// An unsigned field of one `INFO` section (0 when absent).
fn unsigned_fields<const N: usize>(
    ctx: *mut raw::RedisModuleCtx,
    section: &CStr,
    fields: [&CStr; N],
) -> [u64; N] {
    let mut out = [0; N];
    // SAFETY: live context; the info object is freed before returning.
    unsafe {
        let info = rm!(RedisModule_GetServerInfo)(ctx, section.as_ptr());
        if info.is_null() {
            return out;
        }
        for (slot, field) in out.iter_mut().zip(fields) {
            *slot = rm!(RedisModule_ServerInfoGetFieldUnsigned)(
                info,
                field.as_ptr(),
                std::ptr::null_mut(),
            );
        }
        rm!(RedisModule_FreeServerInfo)(ctx, info);
    }
    out
}

/// `connected_clients` of `INFO clients` (O(1) in the server).
pub fn connected_clients(ctx: *mut raw::RedisModuleCtx) -> u64 {
    unsigned_fields(ctx, c"clients", [c"connected_clients"])[0]
}

/// `keyspace_hits` and `keyspace_misses` of `INFO stats`.
pub fn keyspace_hits_misses(ctx: *mut raw::RedisModuleCtx) -> (u64, u64) {
    let [h, m] = unsigned_fields(ctx, c"stats", [c"keyspace_hits", c"keyspace_misses"]);
    (h, m)
}

pub fn memory(ctx: *mut raw::RedisModuleCtx) -> Memory {
    let mut m = Memory {
        used_human: String::new(),
        peak_human: String::new(),
        used: 0,
        max: 0,
    };
    // SAFETY: live context; the info object is freed before returning and the
    // field string is copied out first.
    unsafe {
        let info = rm!(RedisModule_GetServerInfo)(ctx, c"memory".as_ptr());
        if info.is_null() {
            return m;
        }
        m.used_human = text_field(info, c"used_memory_human");
        m.peak_human = text_field(info, c"used_memory_peak_human");
        m.used = rm!(RedisModule_ServerInfoGetFieldUnsigned)(
            info,
            c"used_memory".as_ptr(),
            std::ptr::null_mut(),
        );
        m.max = rm!(RedisModule_ServerInfoGetFieldUnsigned)(
            info,
            c"maxmemory".as_ptr(),
            std::ptr::null_mut(),
        );
        rm!(RedisModule_FreeServerInfo)(ctx, info);
    }
    m
}

/// Adds the section `name` with unsigned fields to the module's `INFO`
/// output (Redis prefixes section and field names with the module's name).
pub fn add_info_section(ctx: *mut raw::RedisModuleInfoCtx, name: &CStr, fields: &[(String, u64)]) {
    // SAFETY: live info context; names are NUL-terminated for the call.
    unsafe {
        if rm!(RedisModule_InfoAddSection)(ctx, name.as_ptr()) != raw::REDISMODULE_OK as i32 {
            return;
        }
        for (field, v) in fields {
            if let Ok(field) = CString::new(field.as_str()) {
                rm!(RedisModule_InfoAddFieldULongLong)(ctx, field.as_ptr(), *v);
            }
        }
    }
}

/// Runs `cmd args...` through `RM_Call` and returns its string reply (a
/// status or bulk string); `None` when the call fails or replies otherwise.
fn call_text(ctx: *mut raw::RedisModuleCtx, cmd: &CStr, arg: &CStr) -> Option<Vec<u8>> {
    // SAFETY: live context; "c" takes one NUL-terminated string; the reply
    // is copied out and freed before returning.
    unsafe {
        let reply = rm!(RedisModule_Call)(ctx, cmd.as_ptr(), c"c".as_ptr(), arg.as_ptr());
        if reply.is_null() {
            return None;
        }
        let kind = rm!(RedisModule_CallReplyType)(reply);
        let mut out = None;
        if kind == raw::REDISMODULE_REPLY_STRING as c_int
            || kind == raw::REDISMODULE_REPLY_VERBATIM_STRING as c_int
        {
            let mut len = 0usize;
            let ptr = rm!(RedisModule_CallReplyStringPtr)(reply, &mut len);
            out = Some(if ptr.is_null() || len == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(ptr.cast::<u8>(), len).to_vec()
            });
        }
        rm!(RedisModule_FreeCallReply)(reply);
        out
    }
}

/// `MEMORY PURGE`; true when the server answered OK.
pub fn memory_purge(ctx: *mut raw::RedisModuleCtx) -> bool {
    // SAFETY: live context; the reply is freed before returning.
    unsafe {
        let reply =
            rm!(RedisModule_Call)(ctx, c"MEMORY".as_ptr(), c"c".as_ptr(), c"PURGE".as_ptr());
        if reply.is_null() {
            return false;
        }
        let ok = rm!(RedisModule_CallReplyType)(reply) != raw::REDISMODULE_REPLY_ERROR as c_int;
        rm!(RedisModule_FreeCallReply)(reply);
        ok
    }
}

/// How many clients are inside `MULTI` (flag `x` of `CLIENT LIST`), or
/// `None` when the list could not be read.
pub fn clients_in_multi(ctx: *mut raw::RedisModuleCtx) -> Option<usize> {
    let list = call_text(ctx, c"CLIENT", c"LIST")?;
    Some(crate::stats::clients_in_multi(&list))
}
