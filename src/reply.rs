//! Reply writers over the current call's context. Maps are RESP3 maps; Redis
//! itself flattens them to `[field, value, ...]` arrays on RESP2.

use std::ffi::{c_char, c_long, CStr};

use redis_module::raw;

/// The current call: its context, for replies and for the key/replication glue.
pub struct Reply {
    ctx: *mut raw::RedisModuleCtx,
}

macro_rules! rm {
    ($f:ident) => {
        redis_module::raw::$f.expect(concat!(stringify!($f), " is in every supported server"))
    };
}
pub(crate) use rm;

impl Reply {
    pub fn new(ctx: *mut raw::RedisModuleCtx) -> Self {
        Reply { ctx }
    }

    pub fn ctx(&self) -> *mut raw::RedisModuleCtx {
        self.ctx
    }

    fn flags(&self) -> u32 {
        // SAFETY: live context of the current call.
        unsafe { rm!(RedisModule_GetContextFlags)(self.ctx) as u32 }
    }

    pub fn is_resp3(&self) -> bool {
        self.flags() & raw::REDISMODULE_CTX_FLAGS_RESP3 != 0
    }

    pub fn ok(&self) {
        self.simple(c"OK");
    }

    pub fn simple(&self, s: &CStr) {
        // SAFETY: live context; `s` is NUL-terminated.
        unsafe {
            rm!(RedisModule_ReplyWithSimpleString)(self.ctx, s.as_ptr());
        }
    }

    pub fn bulk(&self, b: &[u8]) {
        // SAFETY: live context; Redis copies `b.len()` bytes from `b`.
        unsafe {
            rm!(RedisModule_ReplyWithStringBuffer)(self.ctx, b.as_ptr().cast::<c_char>(), b.len());
        }
    }

    pub fn null(&self) {
        // SAFETY: live context.
        unsafe {
            rm!(RedisModule_ReplyWithNull)(self.ctx);
        }
    }

    pub fn int(&self, v: i64) {
        // SAFETY: live context.
        unsafe {
            rm!(RedisModule_ReplyWithLongLong)(self.ctx, v);
        }
    }

    /// Starts a map of `len` field/value pairs.
    pub fn map(&self, len: usize) {
        // SAFETY: live context; the caller then writes exactly 2*len replies.
        unsafe {
            rm!(RedisModule_ReplyWithMap)(self.ctx, len as c_long);
        }
    }

    pub fn array(&self, len: usize) {
        // SAFETY: live context; the caller then writes exactly len replies.
        unsafe {
            rm!(RedisModule_ReplyWithArray)(self.ctx, len as c_long);
        }
    }

    /// A map field name.
    pub fn field(&self, name: &str) {
        self.bulk(name.as_bytes());
    }

    /// A double that reads the same on every server: a RESP3 double, or on
    /// RESP2 its shortest decimal text (Redis 7.0 would print `%.17g` digits).
    pub fn double(&self, v: f64) {
        if self.is_resp3() {
            // SAFETY: live context.
            unsafe {
                rm!(RedisModule_ReplyWithDouble)(self.ctx, v);
            }
        } else {
            self.bulk(format!("{v}").as_bytes());
        }
    }
}
