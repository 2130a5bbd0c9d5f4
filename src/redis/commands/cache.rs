//! CACHE.SET*/GET* and CACHE.INVALIDATEUSER.

use std::sync::atomic::AtomicI64;

use redis_module::raw;

use crate::args::{given_twice, int_in, is_token, missing_value, syntax_error};
use crate::error::{CmdError, CmdResult};
use crate::json_shape::{self, Shape};
use crate::keys::{self, KeyStyle, UserKind};
use crate::redis::acl::{check_keys, open_checked};
use crate::redis::command::{Args, KeyAccess};
use crate::redis::config::{self, KEY_STYLE, MAX_TTL};
use crate::redis::reply::Reply;
use crate::redis::store::{key_name, notify, replicate, Key, OwnedString};
use crate::stats::{Namespace, COUNTERS};

/// What a pair of SET/GET commands stores.
pub struct Kind {
    pub namespace: Namespace,
    pub ttl: &'static AtomicI64,
    pub shape: Shape,
}

pub const USER: Kind = Kind {
    namespace: Namespace::User,
    ttl: &config::USER_TTL,
    shape: Shape::Object,
};
pub const PERMISSIONS: Kind = Kind {
    namespace: Namespace::Permissions,
    ttl: &config::USER_TTL,
    shape: Shape::Array,
};
pub const SESSION: Kind = Kind {
    namespace: Namespace::Session,
    ttl: &config::SESSION_TTL,
    shape: Shape::Object,
};

/// Consumes a command-specific option at `i`: `Some(n)` arguments used, `None` if not its own.
pub type ExtraOption<'f> = dyn FnMut(&Args, usize) -> Result<Option<usize>, CmdError> + 'f;

pub const TTL_OPTION: &str = "[TTL <seconds>]";

/// Parses trailing options of a SET command: `TTL <seconds>`, and those
/// `extra` takes (`allowed` lists them all, for errors). Returns the TTL in
/// seconds, from the option or the config.
pub fn parse_set_options(
    args: &Args,
    from: usize,
    kind: &Kind,
    allowed: &str,
    extra: &mut ExtraOption,
) -> Result<i64, CmdError> {
    let mut ttl = None;
    let mut i = from;
    while i < args.len() {
        let arg = args.bytes(i);
        if is_token(arg, "TTL") {
            if i + 1 >= args.len() {
                return Err(missing_value(arg, allowed));
            }
            if ttl.is_some() {
                return Err(given_twice(arg, allowed));
            }
            ttl = Some(int_in(args.bytes(i + 1), "TTL", 1, MAX_TTL)?);
            i += 2;
        } else if let Some(used) = extra(args, i)? {
            i += used;
        } else {
            return Err(syntax_error(arg, allowed));
        }
    }
    Ok(ttl.unwrap_or_else(|| config::ttl(kind.ttl)))
}

/// Stores the client's JSON text at `name` with `ttl_s`, refusing other
/// types, and replicates the effect with its absolute expiry.
pub fn store_json(
    reply: &Reply,
    name: &OwnedString,
    value_arg: usize,
    args: &Args,
    ttl_s: i64,
) -> CmdResult {
    let ctx = reply.ctx();
    let value = args.raw(value_arg).ok_or(CmdError::WrongArity)?;
    let mut k = open_checked(ctx, name, args.access())?;
    k.expect_string_or_empty()?;
    let at = k.set_string_with_ttl(value, ttl_s * 1000)?;
    drop(k);
    // The events `SET key value EX n` sends.
    notify(ctx, raw::REDISMODULE_NOTIFY_STRING, c"set", name);
    notify(ctx, raw::REDISMODULE_NOTIFY_GENERIC, c"expire", name);
    let at = at.to_string();
    replicate(
        ctx,
        c"SET",
        &[name.bytes(), args.bytes(value_arg), b"PXAT", at.as_bytes()],
    );
    reply.ok();
    Ok(())
}

/// Replies the JSON text at `name` or nil, counting a hit or a miss.
pub fn fetch_json(reply: &Reply, args: &Args, name: &OwnedString, ns: Namespace) -> CmdResult {
    let k = open_checked(reply.ctx(), name, args.access())?;
    match k.read_string()? {
        Some(v) => {
            COUNTERS.lookup(ns, true);
            reply.bulk(v);
        }
        None => {
            COUNTERS.lookup(ns, false);
            reply.null();
        }
    }
    Ok(())
}

fn no_extra(_: &Args, _: usize) -> Result<Option<usize>, CmdError> {
    Ok(None)
}

pub fn style() -> KeyStyle {
    KEY_STYLE.get()
}

fn user_scoped_key(args: &Args, ukind: UserKind) -> Result<OwnedString, CmdError> {
    let what = if ukind == UserKind::Session {
        "telegram_id"
    } else {
        "user_id"
    };
    Ok(key_name(|buf| {
        keys::user_key_into(buf, style(), ukind, args.bytes(1), what)
    })?)
}

fn set_user_scoped(reply: &Reply, args: &Args, kind: &Kind, ukind: UserKind) -> CmdResult {
    json_shape::validate(args.bytes(2), kind.shape, "value").map_err(CmdError::msg)?;
    let ttl = parse_set_options(args, 3, kind, TTL_OPTION, &mut no_extra)?;
    let name = user_scoped_key(args, ukind)?;
    store_json(reply, &name, 2, args, ttl)
}

fn get_user_scoped(reply: &Reply, args: &Args, kind: &Kind, ukind: UserKind) -> CmdResult {
    let name = user_scoped_key(args, ukind)?;
    fetch_json(reply, args, &name, kind.namespace)
}

pub fn setuser(reply: &Reply, args: &Args) -> CmdResult {
    set_user_scoped(reply, args, &USER, UserKind::User)
}
pub fn getuser(reply: &Reply, args: &Args) -> CmdResult {
    get_user_scoped(reply, args, &USER, UserKind::User)
}
pub fn setpermissions(reply: &Reply, args: &Args) -> CmdResult {
    set_user_scoped(reply, args, &PERMISSIONS, UserKind::Permissions)
}
pub fn getpermissions(reply: &Reply, args: &Args) -> CmdResult {
    get_user_scoped(reply, args, &PERMISSIONS, UserKind::Permissions)
}
pub fn setsession(reply: &Reply, args: &Args) -> CmdResult {
    set_user_scoped(reply, args, &SESSION, UserKind::Session)
}
pub fn getsession(reply: &Reply, args: &Args) -> CmdResult {
    get_user_scoped(reply, args, &SESSION, UserKind::Session)
}

/// Deletes the user's record, permissions, session and user-with-roles keys
/// in one step; replies how many existed.
pub fn invalidateuser(reply: &Reply, args: &Args) -> CmdResult {
    let ctx = reply.ctx();
    let mut names = Vec::with_capacity(4);
    for ukind in UserKind::ALL {
        let key = keys::user_key(style(), ukind, args.bytes(1), "user_id")?;
        names.push(OwnedString::new(&key));
    }
    let access = args.access();
    let checks: Vec<(&OwnedString, KeyAccess)> = names.iter().map(|n| (n, access)).collect();
    check_keys(ctx, &checks)?;
    let mut deleted: Vec<&[u8]> = Vec::with_capacity(4);
    for name in &names {
        let mut k = Key::open(ctx, name, access.mode());
        if k.exists() && k.delete() {
            notify(ctx, raw::REDISMODULE_NOTIFY_GENERIC, c"del", name);
            deleted.push(name.bytes());
        }
    }
    if !deleted.is_empty() {
        replicate(ctx, c"DEL", &deleted);
    }
    reply.int(deleted.len() as i64);
    Ok(())
}
