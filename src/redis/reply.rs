//! Reply writers over the current call's context. Maps are RESP3 maps; Redis
//! itself flattens them to `[field, value, ...]` arrays on RESP2.
//!
//! A lone scalar reply goes straight to the client. A map or array is
//! collected and only sent when the handler has returned successfully with
//! it complete: a handler that fails or panics half-way through a map can
//! never leave a partial reply on the connection (see [`Reply::finish`]).

use std::cell::RefCell;
use std::ffi::{c_char, c_long, CStr};

use redis_module::raw;

/// The current call: its context, for replies and for the key/replication glue.
pub struct Reply {
    ctx: *mut raw::RedisModuleCtx,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    /// Top-level replies written straight to the client (at most one).
    sent: usize,
    /// Writes dropped because a reply had already gone out.
    dropped: bool,
    /// The collected reply, once an aggregate has begun.
    pending: Option<Pending>,
}

/// A reply being collected; its buffers are reused from call to call.
#[derive(Default)]
struct Pending {
    ops: Vec<Op>,
    /// Bulk and simple string bytes, addressed by the ops.
    bytes: Vec<u8>,
    /// Elements each open aggregate still expects, innermost last.
    owed: Vec<usize>,
    /// Complete top-level replies collected.
    done: usize,
}

enum Op {
    /// NUL-terminated text at `bytes[start..end]`.
    Simple(usize, usize),
    Bulk(usize, usize),
    Null,
    Int(i64),
    Double(f64),
    Map(usize),
    Array(usize),
}

/// Collected buffers larger than this are freed rather than kept for the next call.
const KEEP_CAPACITY: usize = 16 * 1024;

thread_local! {
    // Commands run on Redis's main thread: one spare set of buffers serves them all.
    static SPARE: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// What became of a call's reply; see [`Reply::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Exactly one complete reply reached the client.
    Sent,
    /// Nothing reached the client: the caller must still reply.
    Nothing,
    /// A reply reached the client, and the handler then failed or wrote
    /// more; the extra was dropped, the sent reply cannot be taken back.
    AlreadySent,
}

impl Pending {
    fn take_spare() -> Pending {
        SPARE
            .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.take()))
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn recycle(mut self) {
        if self.ops.capacity() * std::mem::size_of::<Op>() > KEEP_CAPACITY
            || self.bytes.capacity() > KEEP_CAPACITY
        {
            return;
        }
        self.ops.clear();
        self.bytes.clear();
        self.owed.clear();
        self.done = 0;
        let _ = SPARE.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                *s = Some(self);
            }
        });
    }

    fn text(&mut self, b: &[u8], nul: bool) -> (usize, usize) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        if nul {
            self.bytes.push(0);
        }
        (start, self.bytes.len())
    }

    /// Counts one element (scalar or aggregate header) in the open aggregate.
    fn element(&mut self) {
        match self.owed.last_mut() {
            Some(n) => *n = n.saturating_sub(1),
            None => self.done += 1,
        }
    }

    /// Closes every aggregate that has all its elements.
    fn close_full(&mut self) {
        while self.owed.last() == Some(&0) {
            self.owed.pop();
        }
    }

    fn scalar(&mut self, op: Op) {
        self.ops.push(op);
        self.element();
        self.close_full();
    }

    fn aggregate(&mut self, op: Op, elements: usize) {
        self.ops.push(op);
        self.element();
        self.owed.push(elements);
        self.close_full();
    }

    /// Writes the collected reply to the client.
    fn flush(&self, ctx: *mut raw::RedisModuleCtx) {
        let text = |start: usize, end: usize| self.bytes.get(start..end).unwrap_or(&[]);
        for op in &self.ops {
            // SAFETY: live context of the current call; string pointers and
            // lengths address `self.bytes`, which is not modified meanwhile,
            // and simple strings carry their NUL.
            unsafe {
                match *op {
                    Op::Simple(start, end) => {
                        let t = text(start, end);
                        if t.last() == Some(&0) {
                            rm!(RedisModule_ReplyWithSimpleString)(
                                ctx,
                                t.as_ptr().cast::<c_char>(),
                            );
                        } else {
                            rm!(RedisModule_ReplyWithNull)(ctx);
                        }
                    }
                    Op::Bulk(start, end) => {
                        let t = text(start, end);
                        rm!(RedisModule_ReplyWithStringBuffer)(
                            ctx,
                            t.as_ptr().cast::<c_char>(),
                            t.len(),
                        );
                    }
                    Op::Null => {
                        rm!(RedisModule_ReplyWithNull)(ctx);
                    }
                    Op::Int(v) => {
                        rm!(RedisModule_ReplyWithLongLong)(ctx, v);
                    }
                    Op::Double(v) => {
                        rm!(RedisModule_ReplyWithDouble)(ctx, v);
                    }
                    Op::Map(n) => {
                        rm!(RedisModule_ReplyWithMap)(ctx, n as c_long);
                    }
                    Op::Array(n) => {
                        rm!(RedisModule_ReplyWithArray)(ctx, n as c_long);
                    }
                }
            }
        }
    }
}

impl Reply {
    pub fn new(ctx: *mut raw::RedisModuleCtx) -> Self {
        Reply {
            ctx,
            state: RefCell::new(State::default()),
        }
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

    /// Collects `op` when a reply is being collected; otherwise runs `direct`
    /// unless a reply already went out.
    fn scalar(&self, op: impl FnOnce(&mut Pending) -> Op, direct: impl FnOnce()) {
        let Ok(mut st) = self.state.try_borrow_mut() else {
            return;
        };
        if let Some(p) = st.pending.as_mut() {
            let op = op(p);
            p.scalar(op);
        } else if st.sent > 0 {
            st.dropped = true;
        } else {
            st.sent += 1;
            drop(st);
            direct();
        }
    }

    fn aggregate(&self, op: Op, elements: usize) {
        let Ok(mut st) = self.state.try_borrow_mut() else {
            return;
        };
        st.pending
            .get_or_insert_with(Pending::take_spare)
            .aggregate(op, elements);
    }

    pub fn ok(&self) {
        self.simple(c"OK");
    }

    pub fn simple(&self, s: &CStr) {
        self.scalar(
            |p| {
                let (start, end) = p.text(s.to_bytes(), true);
                Op::Simple(start, end)
            },
            // SAFETY: live context; `s` is NUL-terminated.
            || unsafe {
                rm!(RedisModule_ReplyWithSimpleString)(self.ctx, s.as_ptr());
            },
        );
    }

    pub fn bulk(&self, b: &[u8]) {
        self.scalar(
            |p| {
                let (start, end) = p.text(b, false);
                Op::Bulk(start, end)
            },
            // SAFETY: live context; Redis copies `b.len()` bytes from `b`.
            || unsafe {
                rm!(RedisModule_ReplyWithStringBuffer)(
                    self.ctx,
                    b.as_ptr().cast::<c_char>(),
                    b.len(),
                );
            },
        );
    }

    pub fn null(&self) {
        self.scalar(
            |_| Op::Null,
            // SAFETY: live context.
            || unsafe {
                rm!(RedisModule_ReplyWithNull)(self.ctx);
            },
        );
    }

    pub fn int(&self, v: i64) {
        self.scalar(
            |_| Op::Int(v),
            // SAFETY: live context.
            || unsafe {
                rm!(RedisModule_ReplyWithLongLong)(self.ctx, v);
            },
        );
    }

    /// Starts a map of `len` field/value pairs.
    pub fn map(&self, len: usize) {
        self.aggregate(Op::Map(len), len.saturating_mul(2));
    }

    /// Starts an array of `len` elements.
    pub fn array(&self, len: usize) {
        self.aggregate(Op::Array(len), len);
    }

    /// A map field name.
    pub fn field(&self, name: &str) {
        self.bulk(name.as_bytes());
    }

    /// A double that reads the same on every server: a RESP3 double, or on
    /// RESP2 its shortest decimal text (Redis 7.0 would print `%.17g` digits).
    pub fn double(&self, v: f64) {
        if self.is_resp3() {
            self.scalar(
                |_| Op::Double(v),
                // SAFETY: live context.
                || unsafe {
                    rm!(RedisModule_ReplyWithDouble)(self.ctx, v);
                },
            );
        } else {
            self.bulk(format!("{v}").as_bytes());
        }
    }

    /// A whole map of integer fields as the call's one reply. Written in a
    /// single step with nothing that can fail half-way, so it goes straight
    /// to the client instead of being collected (hot path of
    /// RATELIMIT.CHECK); collected like any map when a reply is under way.
    pub fn int_map(&self, fields: &[(&str, i64)]) {
        let direct = match self.state.try_borrow_mut() {
            Ok(mut st) if st.pending.is_none() && st.sent == 0 => {
                st.sent += 1;
                true
            }
            _ => false,
        };
        if !direct {
            self.map(fields.len());
            for (name, v) in fields {
                self.field(name);
                self.int(*v);
            }
            return;
        }
        // SAFETY: live context; exactly 2 * len replies follow the map
        // header, and Redis copies each name's bytes.
        unsafe {
            rm!(RedisModule_ReplyWithMap)(self.ctx, fields.len() as c_long);
            for (name, v) in fields {
                rm!(RedisModule_ReplyWithStringBuffer)(
                    self.ctx,
                    name.as_ptr().cast::<c_char>(),
                    name.len(),
                );
                rm!(RedisModule_ReplyWithLongLong)(self.ctx, *v);
            }
        }
    }

    /// Ends the call: sends the collected reply when `success` and it is
    /// exactly one complete reply, else discards it. Never panics.
    pub fn finish(&self, success: bool) -> Finish {
        let Ok(mut st) = self.state.try_borrow_mut() else {
            return Finish::AlreadySent;
        };
        let pending = st.pending.take();
        let outcome = if st.sent > 0 {
            if success && !st.dropped && pending.is_none() {
                Finish::Sent
            } else {
                Finish::AlreadySent
            }
        } else {
            match &pending {
                Some(p) if success && p.done == 1 && p.owed.is_empty() => {
                    p.flush(self.ctx);
                    Finish::Sent
                }
                _ => Finish::Nothing,
            }
        };
        if let Some(p) = pending {
            p.recycle();
        }
        outcome
    }
}
