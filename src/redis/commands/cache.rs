//! CACHE.SET*/GET* and CACHE.INVALIDATEUSER: one SET and one GET handler
//! for every kind of [`crate::kinds::KINDS`], with the kind's key scheme
//! and value format.

use redis_module::raw;

use crate::args::{given_twice, int_in, is_token, missing_value, syntax_error};
use crate::error::{CmdError, CmdResult};
use crate::json_shape::{self, Shape};
use crate::keys::{self, KeyStyle};
use crate::kinds::{KindId, Scheme, Value};
use crate::redis::acl::{check_keys, open_checked};
use crate::redis::command::{Args, KeyAccess};
use crate::redis::commands::hashed;
use crate::redis::config::{self, KEY_STYLE, MAX_TTL};
use crate::redis::reply::Reply;
use crate::redis::store::{key_name, notify, replicate, Key, OwnedString};
use crate::stats::{Namespace, COUNTERS};
use crate::vector;

/// Consumes a command-specific option at `i`: `Some(n)` arguments used, `None` if not its own.
pub type ExtraOption<'f> = dyn FnMut(&Args, usize) -> Result<Option<usize>, CmdError> + 'f;

pub const TTL_OPTION: &str = "[TTL <seconds>]";

/// Parses trailing options of a SET command: `TTL <seconds>`, and those
/// `extra` takes (`allowed` lists them all, for errors). Returns the TTL in
/// seconds, from the option or the config.
pub fn parse_set_options(
    args: &Args,
    from: usize,
    kind: KindId,
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
    Ok(ttl.unwrap_or_else(|| config::kind_ttl(kind)))
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
    let value = args.raw(value_arg).ok_or(CmdError::WrongArity)?;
    store_value(reply, name, value, args.bytes(value_arg), args, ttl_s)
}

/// Stores `value` (whose bytes are `bytes`) at `name` with `ttl_s`,
/// refusing other types, and replicates the effect with its absolute expiry.
pub fn store_value(
    reply: &Reply,
    name: &OwnedString,
    value: *mut raw::RedisModuleString,
    bytes: &[u8],
    args: &Args,
    ttl_s: i64,
) -> CmdResult {
    let ctx = reply.ctx();
    let mut k = open_checked(ctx, name, args.access())?;
    k.expect_string_or_empty()?;
    let at = k.set_string_with_ttl(value, ttl_s * 1000)?;
    drop(k);
    // The events `SET key value EX n` sends.
    notify(ctx, raw::REDISMODULE_NOTIFY_STRING, c"set", name);
    notify(ctx, raw::REDISMODULE_NOTIFY_GENERIC, c"expire", name);
    let at = at.to_string();
    replicate(ctx, c"SET", &[name.bytes(), bytes, b"PXAT", at.as_bytes()]);
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

/// The key of `kind` from the positional arguments of its GET command
/// starting at `at` (for search, also its FILTERS option after them).
pub fn kind_key(kind: KindId, args: &Args, at: usize) -> Result<Vec<u8>, CmdError> {
    let def = kind.def();
    match def.scheme {
        Scheme::UserScoped => {
            let what: &'static str = def.get_args.first().copied().unwrap_or("id");
            let mut key = Vec::new();
            keys::user_key_into(&mut key, style(), kind, args.bytes(at), what)?;
            Ok(key)
        }
        Scheme::Search => {
            let filters = hashed::get_search_filters(args, at + 2)?;
            hashed::search_key(args, at, &filters)
        }
        Scheme::Rag => hashed::rag_key(args, at),
        Scheme::HashedText if kind == KindId::Embedding => {
            let text = args.text(at, "text")?;
            let model = args.text(at + 1, "model")?;
            Ok(keys::embedding_key(
                style(),
                text.as_bytes(),
                model.as_bytes(),
            ))
        }
        Scheme::HashedText => hashed::translation_key(args, at),
        Scheme::Documents => {
            let limit = crate::args::int_in(args.bytes(at), "limit", 1, i64::MAX)?;
            let category = args.text(at + 1, "category")?;
            Ok(keys::documents_key(
                style(),
                limit.unsigned_abs(),
                category.as_bytes(),
            )?)
        }
    }
}

/// [`kind_key`] as a Redis string; user-scoped keys are built in a reused
/// buffer (the hot path allocates only the Redis string).
pub fn kind_name(kind: KindId, args: &Args, at: usize) -> Result<OwnedString, CmdError> {
    if kind.def().scheme == Scheme::UserScoped {
        let what: &'static str = kind.def().get_args.first().copied().unwrap_or("id");
        return Ok(key_name(|buf| {
            keys::user_key_into(buf, style(), kind, args.bytes(at), what)
        })?);
    }
    Ok(OwnedString::new(&kind_key(kind, args, at)?))
}

const FORMAT_OPTION: &str = "[FORMAT JSON|FP32]";
const SET_EMBEDDING_OPTIONS: &str = "[FORMAT JSON|FP32] [TTL <seconds>]";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Fp32,
}

fn parse_format(arg: &[u8]) -> Result<Format, CmdError> {
    if is_token(arg, "JSON") {
        Ok(Format::Json)
    } else if is_token(arg, "FP32") {
        Ok(Format::Fp32)
    } else {
        Err(CmdError::msg(format!(
            "ERR FORMAT must be JSON or FP32, got '{}'",
            String::from_utf8_lossy(&arg[..arg.len().min(32)])
        )))
    }
}

/// `CACHE.SET<kind> <get args...> <value> [options]` for every kind but
/// search (whose FILTERS option is part of its key).
pub fn set_kind(reply: &Reply, args: &Args, kind: KindId) -> CmdResult {
    let def = kind.def();
    let value_at = def.get_args.len() + 1;
    let value = args.bytes(value_at);
    let shape = match def.value {
        Value::JsonObject => Some(Shape::Object),
        Value::JsonArray => Some(Shape::Array),
        Value::Json => Some(Shape::Any),
        Value::Fp32Vector => None,
    };
    let Some(shape) = shape else {
        return set_embedding(reply, args, kind, value_at);
    };
    json_shape::validate(value, shape, "value").map_err(CmdError::msg)?;
    let ttl = parse_set_options(args, value_at + 1, kind, TTL_OPTION, &mut no_extra)?;
    let name = kind_name(kind, args, 1)?;
    store_json(reply, &name, value_at, args, ttl)
}

fn set_embedding(reply: &Reply, args: &Args, kind: KindId, value_at: usize) -> CmdResult {
    let mut format = None;
    let ttl = parse_set_options(
        args,
        value_at + 1,
        kind,
        SET_EMBEDDING_OPTIONS,
        &mut |args, i| {
            let arg = args.bytes(i);
            if !is_token(arg, "FORMAT") {
                return Ok(None);
            }
            if i + 1 >= args.len() {
                return Err(missing_value(arg, SET_EMBEDDING_OPTIONS));
            }
            if format.is_some() {
                return Err(given_twice(arg, SET_EMBEDDING_OPTIONS));
            }
            format = Some(parse_format(args.bytes(i + 1))?);
            Ok(Some(2))
        },
    )?;
    let raw_value = args.bytes(value_at);
    let name = kind_name(kind, args, 1)?;
    match format.unwrap_or(Format::Json) {
        Format::Fp32 => {
            vector::check_fp32(raw_value).map_err(|e| CmdError::msg(e.to_string()))?;
            store_json(reply, &name, value_at, args, ttl)
        }
        Format::Json => {
            let packed = vector::pack_json(raw_value).map_err(|e| CmdError::msg(e.to_string()))?;
            let value = OwnedString::new(&packed);
            store_value(reply, &name, value.ptr(), &packed, args, ttl)
        }
    }
}

/// `CACHE.GET<kind> <get args...>` for every kind but search.
pub fn get_kind(reply: &Reply, args: &Args, kind: KindId) -> CmdResult {
    let def = kind.def();
    let options_at = def.get_args.len() + 1;
    let mut format = Format::Fp32;
    if def.value == Value::Fp32Vector {
        match args.len().saturating_sub(options_at) {
            0 => {}
            1 => return Err(missing_value(args.bytes(options_at), FORMAT_OPTION)),
            2 if is_token(args.bytes(options_at), "FORMAT") => {
                format = parse_format(args.bytes(options_at + 1))?;
            }
            _ => return Err(syntax_error(args.bytes(options_at), FORMAT_OPTION)),
        }
    } else if args.len() != options_at {
        return Err(CmdError::WrongArity);
    }
    let name = kind_name(kind, args, 1)?;
    if def.value != Value::Fp32Vector {
        return fetch_json(reply, args, &name, kind);
    }
    let k = open_checked(reply.ctx(), &name, args.access())?;
    let Some(stored) = k.read_string()? else {
        COUNTERS.lookup(kind, false);
        reply.null();
        return Ok(());
    };
    let Some(values) = vector::unpack(stored) else {
        return Err(CmdError::Static(
            "ERR the value at this embedding key is not a packed float32 vector (its length is not a multiple of 4)",
        ));
    };
    COUNTERS.lookup(kind, true);
    match format {
        Format::Fp32 => reply.bulk(stored),
        Format::Json => reply.bulk(vector::render_json(values).as_bytes()),
    }
    Ok(())
}

/// One SET and one GET entry point per kind, for the command table.
macro_rules! kind_handlers {
    ($($set:ident $get:ident => $kind:expr;)*) => {$(
        pub fn $set(reply: &Reply, args: &Args) -> CmdResult {
            set_kind(reply, args, $kind)
        }
        pub fn $get(reply: &Reply, args: &Args) -> CmdResult {
            get_kind(reply, args, $kind)
        }
    )*};
}

kind_handlers! {
    setuser getuser => KindId::User;
    setpermissions getpermissions => KindId::Permissions;
    setsession getsession => KindId::Session;
    setrag getrag => KindId::Rag;
    settranslation gettranslation => KindId::Translation;
    setuserroles getuserroles => KindId::UserRoles;
    setdocuments getdocuments => KindId::Documents;
    setembedding getembedding => KindId::Embedding;
}

/// Deletes the user's record, permissions, session and user-with-roles keys
/// in one step; replies how many existed.
pub fn invalidateuser(reply: &Reply, args: &Args) -> CmdResult {
    let ctx = reply.ctx();
    let mut names = Vec::with_capacity(4);
    for kind in crate::kinds::user_scoped() {
        let key = keys::user_key(style(), kind, args.bytes(1), "user_id")?;
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
