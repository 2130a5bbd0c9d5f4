//! Every command the module registers, with its flags and routing argument.

pub mod cache;
pub mod hashed;
pub mod keyname;
pub mod ratelimit;
pub mod stats;

#[cfg(feature = "panic-test")]
pub mod debugpanic;

use std::ffi::c_int;

use crate::kinds::{self, KindId, Scheme, Value};
use crate::redis::command::{command, Command, CommandDef, Handler, KeyAccess};
use crate::redis::command_docs::{
    block, flag, integer, key, many, option, optional_block, string, Arg, TTL,
};

const FILTERS: Arg = option(c"FILTERS", string(c"json_object"));
const ACTION: Arg = option(c"ACTION", string(c"action"));
const CHECK_ARGS: &[Arg] = &[
    string(c"identifier"),
    many(optional_block(
        c"rule",
        &[integer(c"limit"), integer(c"window_seconds")],
    )),
    ACTION,
    option(c"COST", integer(c"n")),
];
const CHECKALL_ARGS: &[Arg] = &[
    integer(c"numlimiters"),
    many(block(
        c"limiter",
        &[string(c"action"), string(c"identifier")],
    )),
    option(c"COST", integer(c"n")),
];
const REFUND_ARGS: &[Arg] = &[
    string(c"identifier"),
    ACTION,
    option(c"COST", integer(c"n")),
];
const LIMITER_ARGS: &[Arg] = &[string(c"identifier"), ACTION];
// `fast` only where the work does not grow with the value or arguments
// (Redis's meaning: O(1) or O(log N)); SET itself is not `fast` either.
const WRITE: &str = "write deny-oom";
const READ: &str = "readonly fast";
const READ_LINEAR: &str = "readonly";

/// `CACHE.SET<kind>`, from the kind's entry in the table of kinds.
const fn set_def(
    kind: KindId,
    complexity: &'static str,
    args: &'static [Arg],
    summary: &'static str,
    handler: Handler,
) -> CommandDef {
    let k = &kinds::TABLE[kind as usize];
    CommandDef {
        name: k.set_command,
        flags: WRITE,
        arity: -((k.get_args.len() + 2) as c_int),
        route_arg: (k.route + 1) as c_int,
        route_is_key: false,
        keys: KeyAccess::Overwrite,
        complexity,
        args,
        summary,
        handler,
    }
}

/// `CACHE.GET<kind>`, from the kind's entry in the table of kinds: exact
/// arity unless the kind takes options (search's FILTERS, FORMAT).
const fn get_def(
    kind: KindId,
    flags: &'static str,
    complexity: &'static str,
    args: &'static [Arg],
    summary: &'static str,
    handler: Handler,
) -> CommandDef {
    let k = &kinds::TABLE[kind as usize];
    let n = (k.get_args.len() + 1) as c_int;
    let options = matches!(k.scheme, Scheme::Search) || matches!(k.value, Value::Fp32Vector);
    CommandDef {
        name: k.get_command,
        flags,
        arity: if options { -n } else { n },
        route_arg: (k.route + 1) as c_int,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity,
        args,
        summary,
        handler,
    }
}

const JSON_SIZE: &str = "O(N) where N is the size of the JSON value, which is validated";
const FORMAT: Arg = option(c"FORMAT", string(c"format"));

pub static COMMANDS: &[Command] = &[
    command!(set_def(
        KindId::User,
        JSON_SIZE,
        &[string(c"user_id"), string(c"json"), TTL],
        "Stores a user record (JSON object) at user:<user_id> with the user TTL.",
        cache::setuser,
    )),
    command!(get_def(
        KindId::User,
        READ,
        "O(1)",
        &[string(c"user_id")],
        "Returns the user record stored at user:<user_id>, or nil.",
        cache::getuser,
    )),
    command!(set_def(
        KindId::Permissions,
        JSON_SIZE,
        &[string(c"user_id"), string(c"json"), TTL],
        "Stores a user's permissions (JSON array) at user_permissions:<user_id>.",
        cache::setpermissions,
    )),
    command!(get_def(
        KindId::Permissions,
        READ,
        "O(1)",
        &[string(c"user_id")],
        "Returns the permissions stored at user_permissions:<user_id>, or nil.",
        cache::getpermissions,
    )),
    command!(set_def(
        KindId::Session,
        JSON_SIZE,
        &[string(c"telegram_id"), string(c"json"), TTL],
        "Stores a session (JSON object) at session:<telegram_id> with the session TTL.",
        cache::setsession,
    )),
    command!(get_def(
        KindId::Session,
        READ,
        "O(1)",
        &[string(c"telegram_id")],
        "Returns the session stored at session:<telegram_id>, or nil.",
        cache::getsession,
    )),
    command!(set_def(
        KindId::UserRoles,
        JSON_SIZE,
        &[string(c"user_id"), string(c"json"), TTL],
        "Stores a user with roles (JSON object) at user_with_roles:<user_id> with the user TTL.",
        cache::setuserroles,
    )),
    command!(get_def(
        KindId::UserRoles,
        READ,
        "O(1)",
        &[string(c"user_id")],
        "Returns the user with roles stored at user_with_roles:<user_id>, or nil.",
        cache::getuserroles,
    )),
    command!(set_def(
        KindId::Documents,
        JSON_SIZE,
        &[integer(c"limit"), string(c"category"), string(c"json"), TTL],
        "Stores a popular-document list (JSON array) at popular_documents:<limit>:<category>.",
        cache::setdocuments,
    )),
    command!(get_def(
        KindId::Documents,
        READ,
        "O(1)",
        &[integer(c"limit"), string(c"category")],
        "Returns the popular-document list stored for <limit> and <category>, or nil.",
        cache::getdocuments,
    )),
    command!(set_def(
        KindId::Embedding,
        "O(N) where N is the size of the vector, which is validated (and packed from JSON)",
        &[string(c"text"), string(c"model"), string(c"vector"), FORMAT, TTL],
        "Stores an embedding packed as float32 at embedding:<md5(text)>:<model>.",
        cache::setembedding,
    )),
    command!(get_def(
        KindId::Embedding,
        READ_LINEAR,
        "O(N) where N is the length of the hashed text and of the vector",
        &[string(c"text"), string(c"model"), FORMAT],
        "Returns a cached embedding as float32 bytes (or JSON with FORMAT JSON), or nil.",
        cache::getembedding,
    )),
    command!(CommandDef {
        name: "cache.invalidateuser",
        // Not deny-oom: deleting frees memory, as DEL does.
        flags: "write",
        arity: 2,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Delete,
        complexity: "O(1) for keys that hold strings; O(M) for a key of another type with M elements, as DEL",
        args: &[string(c"user_id")],
        summary:
            "Deletes a user's record, permissions, session and user-with-roles keys atomically.",
        handler: cache::invalidateuser,
    }),
    command!(CommandDef {
        name: "cache.stats",
        flags: "readonly allow-loading allow-stale fast",
        arity: -1,
        route_arg: 0,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity: "O(1)",
        args: &[flag(c"reset", c"RESET")],
        summary: "Hit/miss and rate-limiter counters of this server; RESET zeroes them.",
        handler: stats::stats,
    }),

    command!(CommandDef {
        name: "ratelimit.check",
        flags: WRITE,
        arity: -2,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::ReadUpdate,
        complexity: "O(N) where N is the number of requests the limiter holds; O(COST) when denied under its stored rule",
        args: CHECK_ARGS,
        summary: "Exact sliding-window check: admits and records COST requests when within the limit.",
        handler: ratelimit::check,
    }),
    command!(CommandDef {
        name: "ratelimit.acquire",
        flags: WRITE,
        arity: -2,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::ReadUpdate,
        complexity: "O(N) where N is the number of requests the limiter holds; O(COST) when denied under its stored rules",
        args: CHECK_ARGS,
        summary: "RATELIMIT.CHECK with a one-integer reply: 0 when admitted, else the ms to wait (-1: never).",
        handler: ratelimit::acquire,
    }),
    command!(CommandDef {
        name: "ratelimit.checkall",
        flags: WRITE,
        arity: -4,
        route_arg: 3,
        route_is_key: false,
        keys: KeyAccess::ReadUpdate,
        complexity: "O(L*N) where L is the number of limiters and N the requests each holds",
        args: CHECKALL_ARGS,
        summary: "All-or-nothing check of up to 16 limiters under their actions' policies.",
        handler: ratelimit::checkall,
    }),
    command!(CommandDef {
        name: "ratelimit.refund",
        flags: WRITE,
        arity: -2,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::ReadUpdate,
        complexity: "O(N) where N is the number of requests the limiter holds",
        args: REFUND_ARGS,
        summary: "Takes back the most recent requests still counted by a limiter.",
        handler: ratelimit::refund,
    }),
    command!(CommandDef {
        name: "ratelimit.peek",
        flags: READ_LINEAR,
        arity: -2,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity: "O(N) where N is the number of requests the limiter holds; O(COST) when it would be denied under the stored rule",
        args: CHECK_ARGS,
        summary: "What RATELIMIT.CHECK would answer now, recording nothing.",
        handler: ratelimit::peek,
    }),
    command!(CommandDef {
        name: "ratelimit.info",
        flags: READ_LINEAR,
        arity: -2,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity: "O(N) where N is the number of requests the limiter holds",
        args: LIMITER_ARGS,
        summary: "Counted requests, rule and TTL of a limiter.",
        handler: ratelimit::info,
    }),
    command!(CommandDef {
        name: "ratelimit.reset",
        flags: "write fast",
        arity: -2,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Delete,
        complexity: "O(1)",
        args: LIMITER_ARGS,
        summary: "Deletes a limiter.",
        handler: ratelimit::reset,
    }),
    command!(CommandDef {
        name: "ratelimit.record",
        flags: WRITE,
        arity: -5,
        route_arg: 1,
        route_is_key: true,
        keys: KeyAccess::Update,
        complexity: "O(N) where N is the number of requests the limiter holds",
        args: &[key(c"key"), integer(c"now_ms"), integer(c"limit"), integer(c"window_ms"), integer(c"cost"), many(optional_block(c"rule", &[integer(c"limit"), integer(c"window_ms")]))],
        summary: "Internal: applies an admitted check at an absolute time (what replicas and the AOF receive).",
        handler: ratelimit::record,
    }),

    command!(CommandDef {
        name: "cache.setsearch",
        flags: WRITE,
        arity: -4,
        route_arg: 2,
        route_is_key: false,
        keys: KeyAccess::Overwrite,
        complexity: "O(N) where N is the size of the JSON value and of FILTERS",
        args: &[string(c"query"), string(c"user_id"), string(c"json"), FILTERS, TTL],
        summary: "Stores search results at search:<md5(query:user_id:filters)> with the search TTL.",
        handler: hashed::setsearch,
    }),
    command!(get_def(
        KindId::Search,
        READ_LINEAR,
        "O(N) where N is the size of FILTERS, which is put in canonical form",
        &[string(c"query"), string(c"user_id"), FILTERS],
        "Returns cached search results, or nil.",
        hashed::getsearch,
    )),
    command!(set_def(
        KindId::Rag,
        JSON_SIZE,
        &[string(c"query"), string(c"user_id"), string(c"context_hash"), string(c"json"), TTL],
        "Stores a RAG answer at rag_response:<md5(query:user_id:context_hash)>.",
        cache::setrag,
    )),
    command!(get_def(
        KindId::Rag,
        READ_LINEAR,
        "O(N) where N is the length of the hashed arguments",
        &[string(c"query"), string(c"user_id"), string(c"context_hash")],
        "Returns a cached RAG answer, or nil.",
        cache::getrag,
    )),
    command!(set_def(
        KindId::Translation,
        JSON_SIZE,
        &[string(c"text"), string(c"source_lang"), string(c"target_lang"), string(c"json"), TTL],
        "Stores a translation at translation:<md5(text)>:<source>:<target>.",
        cache::settranslation,
    )),
    command!(get_def(
        KindId::Translation,
        READ_LINEAR,
        "O(N) where N is the length of the hashed text",
        &[string(c"text"), string(c"source_lang"), string(c"target_lang")],
        "Returns a cached translation, or nil.",
        cache::gettranslation,
    )),
    command!(CommandDef {
        name: "cache.key",
        flags: READ_LINEAR,
        arity: -3,
        route_arg: 0,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity: "O(N) where N is the size of the arguments (FILTERS is put in canonical form)",
        args: &[string(c"kind"), many(string(c"arg"))],
        summary: "The key name the module uses for a kind and the arguments of its GET command.",
        handler: keyname::key,
    }),
];
