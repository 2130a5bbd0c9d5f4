//! Lines in the server's log.

use std::ffi::CString;

use redis_module::raw;

pub fn warning(ctx: *mut raw::RedisModuleCtx, msg: &str) {
    let text = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: "%s" with one NUL-terminated argument; a NULL ctx logs as the module-less server.
    unsafe {
        rm!(RedisModule_Log)(ctx, c"warning".as_ptr(), c"%s".as_ptr(), text.as_ptr());
    }
}
