//! What the module asks of the server itself: its memory figures and its
//! `INFO` output.

use std::ffi::{c_char, CStr, CString};

use redis_module::raw;

/// What `INFO memory` reports of the server's memory.
pub struct Memory {
    pub used_human: String,
    pub used: u64,
    pub max: u64,
}

pub fn memory(ctx: *mut raw::RedisModuleCtx) -> Memory {
    let mut m = Memory {
        used_human: String::new(),
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
        let human: *const c_char =
            rm!(RedisModule_ServerInfoGetFieldC)(info, c"used_memory_human".as_ptr());
        if !human.is_null() {
            m.used_human = CStr::from_ptr(human).to_string_lossy().into_owned();
        }
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
