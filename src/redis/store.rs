//! Keys through Redis's low-level key API: owned key names, typed access,
//! expiry, and replication of effects.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr};

use redis_module::raw;

use crate::error::{CmdError, WRONGTYPE};
use crate::redis::command::string_bytes;

/// A Redis string we created and must free.
pub struct OwnedString(*mut raw::RedisModuleString);

impl OwnedString {
    pub fn new(bytes: &[u8]) -> OwnedString {
        // SAFETY: a NULL context creates a string we own and free in Drop.
        let s = unsafe {
            rm!(RedisModule_CreateString)(
                std::ptr::null_mut(),
                bytes.as_ptr().cast::<c_char>(),
                bytes.len(),
            )
        };
        OwnedString(s)
    }

    pub fn ptr(&self) -> *mut raw::RedisModuleString {
        self.0
    }

    pub fn bytes(&self) -> &[u8] {
        string_bytes(self.0)
    }
}

impl Drop for OwnedString {
    fn drop(&mut self) {
        // SAFETY: created with a NULL context in `new`; freed once here.
        unsafe { rm!(RedisModule_FreeString)(std::ptr::null_mut(), self.0) }
    }
}

thread_local! {
    // Commands run on Redis's main thread: one buffer builds every key name.
    static NAME: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A key name written by `build` into a reused buffer (no allocation on
/// the hot path), as a Redis string.
pub fn key_name<E>(build: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<OwnedString, E> {
    let with = |buf: &mut Vec<u8>| {
        build(buf)?;
        let name = OwnedString::new(buf);
        if buf.capacity() > 4096 {
            *buf = Vec::new();
        }
        Ok(name)
    };
    NAME.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => with(&mut buf),
        Err(_) => with(&mut Vec::new()),
    })
}

/// Lengths (bytes) of limiter values written at their exact size: from
/// where growing in place could take a limiter of 100 requests over 600
/// bytes of `MEMORY USAGE`, up to the longest 100 requests can encode to
/// (a longer value holds more, and grows in place).
pub const EXACT_SIZE: std::ops::RangeInclusive<usize> = 200..=600;

const NOT_WRITABLE: CmdError = CmdError::Static("ERR could not write the key");

/// An open key, closed on drop. Only a key opened for writing may change;
/// a missing key opened for reading has no handle at all.
///
/// Redis is told the key changed (for WATCH and client-side caching) when
/// it closes, if it did: the module turns off the implicit signal Redis
/// gives every key opened for writing, which would abort a WATCH for a
/// denied check that wrote nothing.
pub struct Key {
    ptr: *mut raw::RedisModuleKey,
    ctx: *mut raw::RedisModuleCtx,
    /// Held by the open key itself (RM_OpenKey takes a reference).
    name: *mut raw::RedisModuleString,
    modified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Read,
    Write,
}

impl Key {
    pub fn open(ctx: *mut raw::RedisModuleCtx, name: &OwnedString, mode: Mode) -> Key {
        let flags = match mode {
            Mode::Read => raw::REDISMODULE_READ,
            Mode::Write => raw::REDISMODULE_READ | raw::REDISMODULE_WRITE,
        };
        // SAFETY: live context and key name; the key is closed in Drop.
        let ptr = unsafe {
            rm!(RedisModule_OpenKey)(ctx, name.ptr(), flags as c_int).cast::<raw::RedisModuleKey>()
        };
        Key {
            ptr,
            ctx,
            name: name.ptr(),
            modified: false,
        }
    }

    fn key_type(&self) -> c_int {
        if self.ptr.is_null() {
            return raw::REDISMODULE_KEYTYPE_EMPTY as c_int;
        }
        // SAFETY: open key.
        unsafe { rm!(RedisModule_KeyType)(self.ptr) }
    }

    pub fn exists(&self) -> bool {
        self.key_type() != raw::REDISMODULE_KEYTYPE_EMPTY as c_int
    }

    /// The string value; `None` when the key does not exist; WRONGTYPE for other types.
    pub fn read_string(&self) -> Result<Option<&[u8]>, CmdError> {
        let t = self.key_type();
        if t == raw::REDISMODULE_KEYTYPE_EMPTY as c_int {
            return Ok(None);
        }
        if t != raw::REDISMODULE_KEYTYPE_STRING as c_int {
            return Err(WRONGTYPE);
        }
        let mut len: usize = 0;
        // SAFETY: open string key; read-only DMA is valid until the key is
        // modified or closed, and the borrow of `self` prevents both (every
        // change takes `&mut self`, closing takes the key).
        let ptr = unsafe {
            rm!(RedisModule_StringDMA)(self.ptr, &mut len, raw::REDISMODULE_READ as c_int)
        };
        if ptr.is_null() || len == 0 {
            return Ok(Some(&[]));
        }
        // SAFETY: DMA gave `len` readable bytes at `ptr`.
        Ok(Some(unsafe {
            std::slice::from_raw_parts(ptr.cast::<u8>(), len)
        }))
    }

    /// Fails with WRONGTYPE unless the key is empty or a string.
    pub fn expect_string_or_empty(&self) -> Result<(), CmdError> {
        let t = self.key_type();
        if t == raw::REDISMODULE_KEYTYPE_EMPTY as c_int
            || t == raw::REDISMODULE_KEYTYPE_STRING as c_int
        {
            Ok(())
        } else {
            Err(WRONGTYPE)
        }
    }

    /// Sets the value (shared with `value`, not copied) and its TTL in ms;
    /// returns the absolute expiry Redis stored, for replication.
    pub fn set_string_with_ttl(
        &mut self,
        value: *mut raw::RedisModuleString,
        ttl_ms: i64,
    ) -> Result<i64, CmdError> {
        if self.ptr.is_null() {
            return Err(NOT_WRITABLE);
        }
        // SAFETY: key opened for writing; `value` is a live string.
        unsafe {
            if rm!(RedisModule_StringSet)(self.ptr, value) != raw::REDISMODULE_OK as c_int {
                return Err(NOT_WRITABLE);
            }
            self.modified = true;
            rm!(RedisModule_SetExpire)(self.ptr, ttl_ms);
            Ok(rm!(RedisModule_GetAbsExpire)(self.ptr))
        }
    }

    /// Replaces the value with `data`, reusing the existing string's buffer.
    /// A new key is created by the truncate as a plain (raw) string, which
    /// later writes change in place; a string made with `StringSet` would
    /// be a small embedded one that Redis copies again on the next write.
    ///
    /// Growing in place lets Redis reserve up to as much again as the new
    /// length. For a value in [`EXACT_SIZE`] that would break the memory
    /// bound of a limiter holding 100 requests, so such a value is written
    /// as a new string of its exact size whenever its length changes. The
    /// key keeps its expiry and LFU counter either way.
    pub fn write_bytes(&mut self, data: &[u8]) -> Result<(), CmdError> {
        if self.ptr.is_null() {
            return Err(NOT_WRITABLE);
        }
        let ok = raw::REDISMODULE_OK as c_int;
        let t = self.key_type();
        let is_string = t == raw::REDISMODULE_KEYTYPE_STRING as c_int;
        // SAFETY: open key holding a string.
        let old_len = if is_string {
            unsafe { rm!(RedisModule_ValueLength)(self.ptr) }
        } else {
            0
        };
        let exact = is_string && old_len != data.len() && EXACT_SIZE.contains(&data.len());
        if !exact
            && (is_string || (t == raw::REDISMODULE_KEYTYPE_EMPTY as c_int && !data.is_empty()))
        {
            // SAFETY: key opened for writing, empty or holding a string; after
            // the truncate the DMA pointer addresses exactly `data.len()` writable bytes.
            unsafe {
                if rm!(RedisModule_StringTruncate)(self.ptr, data.len()) != ok {
                    return Err(NOT_WRITABLE);
                }
                self.modified = true;
                let mut len: usize = 0;
                let ptr =
                    rm!(RedisModule_StringDMA)(self.ptr, &mut len, raw::REDISMODULE_WRITE as c_int);
                if ptr.is_null() || len != data.len() {
                    return Err(NOT_WRITABLE);
                }
                std::ptr::copy_nonoverlapping(data.as_ptr(), ptr.cast::<u8>(), len);
            }
            return Ok(());
        }
        // StringSet replaces the key: keep what it would reset (the expiry
        // and the LFU counter, so that eviction does not take a busy
        // limiter for a new one).
        let (expire_at, mut lfu) = (self.abs_expire(), 0i64);
        // SAFETY: open key; GetLFU fails (and is ignored) unless the
        // eviction policy is an LFU one.
        let has_lfu = exact && unsafe { rm!(RedisModule_GetLFU)(self.ptr, &mut lfu) } == ok;
        let value = OwnedString::new(data);
        // SAFETY: key opened for writing; StringSet keeps its own reference.
        if unsafe { rm!(RedisModule_StringSet)(self.ptr, value.ptr()) } != ok {
            return Err(NOT_WRITABLE);
        }
        self.modified = true;
        if expire_at >= 0 {
            self.set_abs_expire(expire_at);
        }
        if has_lfu {
            // SAFETY: the key now holds the new value.
            unsafe { rm!(RedisModule_SetLFU)(self.ptr, lfu) };
        }
        Ok(())
    }

    /// The absolute expiry in Unix ms, -1 without one (or no key).
    pub fn abs_expire(&self) -> i64 {
        if !self.exists() {
            return -1;
        }
        // SAFETY: open, existing key.
        unsafe { rm!(RedisModule_GetAbsExpire)(self.ptr) }
    }

    /// Remaining TTL in ms, -1 without expiry, -2 when the key does not exist.
    pub fn ttl_ms(&self) -> i64 {
        if !self.exists() {
            return -2;
        }
        // SAFETY: open, existing key.
        unsafe { rm!(RedisModule_GetExpire)(self.ptr) }
    }

    pub fn set_abs_expire(&mut self, at_ms: i64) {
        if self.ptr.is_null() {
            return;
        }
        // SAFETY: key opened for writing and holding a value.
        let set = unsafe { rm!(RedisModule_SetAbsExpire)(self.ptr, at_ms) };
        self.modified |= set == raw::REDISMODULE_OK as c_int;
    }

    pub fn delete(&mut self) -> bool {
        if self.ptr.is_null() {
            return false;
        }
        // SAFETY: key opened for writing.
        let deleted =
            unsafe { rm!(RedisModule_DeleteKey)(self.ptr) == raw::REDISMODULE_OK as c_int };
        self.modified |= deleted;
        deleted
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: opened in `open`, closed once here; until then the
            // open key holds its name, so the name is alive for the signal.
            unsafe {
                if self.modified {
                    rm!(RedisModule_SignalModifiedKey)(self.ctx, self.name);
                }
                rm!(RedisModule_CloseKey)(self.ptr)
            }
        }
    }
}

/// Propagates `cmd args...` to replicas and the AOF.
pub fn replicate(ctx: *mut raw::RedisModuleCtx, cmd: &CStr, args: &[&[u8]]) {
    let owned: Vec<OwnedString> = args.iter().map(|a| OwnedString::new(a)).collect();
    let mut ptrs: Vec<*mut raw::RedisModuleString> = owned.iter().map(OwnedString::ptr).collect();
    // SAFETY: "v" takes an array of RedisModuleString pointers and its length;
    // all of them live until the call returns.
    unsafe {
        rm!(RedisModule_Replicate)(
            ctx,
            cmd.as_ptr(),
            c"v".as_ptr(),
            ptrs.as_mut_ptr(),
            ptrs.len(),
        );
    }
}

/// Sends keyspace event `event` of `class` for `key`, as Redis's own
/// commands do; cheap when notifications are off.
pub fn notify(ctx: *mut raw::RedisModuleCtx, class: c_int, event: &CStr, key: &OwnedString) {
    // SAFETY: live context; `event` is NUL-terminated and `key` a live
    // string; Redis copies or takes its own reference to what it keeps.
    unsafe {
        rm!(RedisModule_NotifyKeyspaceEvent)(ctx, class, event.as_ptr(), key.ptr());
    }
}

/// Current Unix time in ms.
pub fn now_ms() -> i64 {
    // SAFETY: no arguments; present in every supported server.
    unsafe { rm!(RedisModule_Milliseconds)() }
}

/// Decimal digits of `v` at the end of `buf`.
fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        // Truncation is intended: a single digit.
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

/// A number as a Redis string, kept from call to call and remade only when
/// the number changes (`RATELIMIT.RECORD`: checks under one rule share limit,
/// window and cost, and checks in the same millisecond share the time, so
/// most checks make no string at all). Redis only takes references to these (replication holds them until
/// the command ends); they are never modified, only replaced.
pub struct KeptNumber {
    value: u64,
    string: *mut raw::RedisModuleString,
}

impl KeptNumber {
    pub const NONE: KeptNumber = KeptNumber {
        value: 0,
        string: std::ptr::null_mut(),
    };

    pub fn get(&mut self, value: u64) -> *mut raw::RedisModuleString {
        if self.string.is_null() || self.value != value {
            self.release();
            let mut buf = [0u8; 20];
            let digits = decimal(value, &mut buf);
            // SAFETY: a NULL context makes a string we own; freed in `release`.
            self.string = unsafe {
                rm!(RedisModule_CreateString)(
                    std::ptr::null_mut(),
                    digits.as_ptr().cast::<c_char>(),
                    digits.len(),
                )
            };
            self.value = value;
        }
        self.string
    }

    pub fn release(&mut self) {
        if !self.string.is_null() {
            // SAFETY: created in `get` with a NULL context, dropped once here;
            // Redis keeps its own references.
            unsafe { rm!(RedisModule_FreeString)(std::ptr::null_mut(), self.string) };
            self.string = std::ptr::null_mut();
        }
    }
}

/// Propagates `cmd` with five strings Redis only takes references to.
pub fn replicate_refs(
    ctx: *mut raw::RedisModuleCtx,
    cmd: &CStr,
    argv: [*mut raw::RedisModuleString; 5],
) {
    // One "s" per string rather than "v": Redis then sizes its argument
    // array once instead of growing it.
    // SAFETY: live context; five "s" take five live strings, and Redis
    // takes a reference to each.
    unsafe {
        rm!(RedisModule_Replicate)(
            ctx,
            cmd.as_ptr(),
            c"sssss".as_ptr(),
            argv[0],
            argv[1],
            argv[2],
            argv[3],
            argv[4],
        );
    }
}

/// Propagates the current command as the client sent it.
pub fn replicate_verbatim(ctx: *mut raw::RedisModuleCtx) {
    // SAFETY: live context of the current command.
    unsafe {
        rm!(RedisModule_ReplicateVerbatim)(ctx);
    }
}
