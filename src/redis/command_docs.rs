//! The arguments of each command as `COMMAND DOCS` shows them, which is
//! also what `redis-cli` draws its typing hints from.

use std::ffi::{c_int, CStr};

use redis_module::raw;

#[derive(Debug, Clone, Copy)]
pub enum ArgKind {
    String,
    Integer,
    /// The real key (internal commands), described by key spec 0.
    Key,
    /// A word alone, such as `RESET`.
    Token,
    /// Arguments that go together, such as `<limit> <window_seconds>`.
    Block(&'static [Arg]),
}

#[derive(Debug, Clone, Copy)]
pub struct Arg {
    pub name: &'static CStr,
    pub kind: ArgKind,
    /// The option word before the value (`TTL <seconds>`).
    pub token: Option<&'static CStr>,
    pub optional: bool,
    pub multiple: bool,
}

pub const fn string(name: &'static CStr) -> Arg {
    Arg {
        name,
        kind: ArgKind::String,
        token: None,
        optional: false,
        multiple: false,
    }
}

pub const fn integer(name: &'static CStr) -> Arg {
    Arg {
        kind: ArgKind::Integer,
        ..string(name)
    }
}

pub const fn key(name: &'static CStr) -> Arg {
    Arg {
        kind: ArgKind::Key,
        ..string(name)
    }
}

/// `[<token> <value>]`.
pub const fn option(token: &'static CStr, value: Arg) -> Arg {
    Arg {
        token: Some(token),
        optional: true,
        ..value
    }
}

/// `[<token>]`.
pub const fn flag(name: &'static CStr, token: &'static CStr) -> Arg {
    Arg {
        name,
        kind: ArgKind::Token,
        token: Some(token),
        optional: true,
        multiple: false,
    }
}

/// `[<args...>]` given together.
pub const fn optional_block(name: &'static CStr, args: &'static [Arg]) -> Arg {
    Arg {
        kind: ArgKind::Block(args),
        optional: true,
        ..string(name)
    }
}

pub const fn block(name: &'static CStr, args: &'static [Arg]) -> Arg {
    Arg {
        kind: ArgKind::Block(args),
        ..string(name)
    }
}

pub const fn many(value: Arg) -> Arg {
    Arg {
        multiple: true,
        ..value
    }
}

/// `[TTL <seconds>]`, the option of every SET command.
pub const TTL: Arg = option(c"TTL", integer(c"seconds"));

/// Arrays in the C API's layout, each ending with an all-zero entry. The
/// nested arrays are owned here; Redis copies them all in `SetCommandInfo`.
pub struct RawArgs {
    arrays: Vec<Vec<raw::RedisModuleCommandArg>>,
}

impl RawArgs {
    pub fn new(args: &[Arg]) -> RawArgs {
        let mut raw_args = RawArgs { arrays: Vec::new() };
        raw_args.push(args);
        raw_args
    }

    /// The top-level array, NULL when there are no arguments.
    pub fn ptr(&mut self) -> *mut raw::RedisModuleCommandArg {
        match self.arrays.last_mut() {
            Some(top) if top.len() > 1 => top.as_mut_ptr(),
            _ => std::ptr::null_mut(),
        }
    }

    /// Converts `args` after their sub-arguments, so the top level is last.
    fn push(&mut self, args: &[Arg]) {
        let mut out = Vec::with_capacity(args.len() + 1);
        for a in args {
            // SAFETY: all-zero is a valid value of this plain C struct (NULL
            // pointers, zero numbers).
            let mut r: raw::RedisModuleCommandArg = unsafe { std::mem::zeroed() };
            r.name = a.name.as_ptr();
            r.key_spec_index = -1;
            r.type_ = match a.kind {
                ArgKind::String => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
                ArgKind::Integer => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER,
                ArgKind::Key => {
                    r.key_spec_index = 0;
                    raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY
                }
                ArgKind::Token => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN,
                ArgKind::Block(sub) => {
                    self.push(sub);
                    if let Some(last) = self.arrays.last_mut() {
                        r.subargs = last.as_mut_ptr();
                    }
                    raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_BLOCK
                }
            };
            if let Some(token) = a.token {
                r.token = token.as_ptr();
            }
            let mut flags = raw::REDISMODULE_CMD_ARG_NONE;
            if a.optional {
                flags |= raw::REDISMODULE_CMD_ARG_OPTIONAL;
            }
            if a.multiple {
                flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE;
            }
            r.flags = c_int::try_from(flags).unwrap_or(0);
            out.push(r);
        }
        // SAFETY: as above; the all-zero entry ends the array.
        out.push(unsafe { std::mem::zeroed() });
        // Moving a Vec into `arrays` keeps its heap buffer where it is, so
        // the `subargs` pointers taken above stay valid.
        self.arrays.push(out);
    }
}
