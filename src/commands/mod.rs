//! Every command the module registers, with its flags and routing argument.

pub mod cache;
pub mod hashed;
pub mod keyname;
pub mod ratelimit;
pub mod stats;

use crate::command::{CommandDef, KeyAccess};
use crate::command_docs::{flag, integer, key, many, option, optional_block, string, Arg, TTL};

const FILTERS: Arg = option(c"FILTERS", string(c"json_object"));
const ACTION: Arg = option(c"ACTION", string(c"action"));
const CHECK_ARGS: &[Arg] = &[
    string(c"identifier"),
    optional_block(c"rule", &[integer(c"limit"), integer(c"window_seconds")]),
    ACTION,
    option(c"COST", integer(c"n")),
];
const LIMITER_ARGS: &[Arg] = &[string(c"identifier"), ACTION];
use crate::entry_point;

entry_point!(setuser, cache::setuser);
entry_point!(getuser, cache::getuser);
entry_point!(setpermissions, cache::setpermissions);
entry_point!(getpermissions, cache::getpermissions);
entry_point!(setsession, cache::setsession);
entry_point!(getsession, cache::getsession);
entry_point!(invalidateuser, cache::invalidateuser);
entry_point!(cache_stats, stats::stats);
entry_point!(setsearch, hashed::setsearch);
entry_point!(getsearch, hashed::getsearch);
entry_point!(setrag, hashed::setrag);
entry_point!(getrag, hashed::getrag);
entry_point!(settranslation, hashed::settranslation);
entry_point!(gettranslation, hashed::gettranslation);
entry_point!(cache_key, keyname::key);
entry_point!(rl_check, ratelimit::check);
entry_point!(rl_peek, ratelimit::peek);
entry_point!(rl_info, ratelimit::info);
entry_point!(rl_reset, ratelimit::reset);
entry_point!(rl_record, ratelimit::record);

// `fast` only where the work does not grow with the value or arguments
// (Redis's meaning: O(1) or O(log N)); SET itself is not `fast` either.
const WRITE: &str = "write deny-oom";
const READ: &str = "readonly fast";
const READ_LINEAR: &str = "readonly";

pub const COMMANDS: &[CommandDef] = &[
    CommandDef {
        name: "cache.setuser",
        flags: WRITE,
        arity: -3,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Overwrite,
        complexity: "O(N) where N is the size of the JSON value, which is validated",
        args: &[string(c"user_id"), string(c"json"), TTL],
        summary: "Stores a user record (JSON object) at user:<user_id> with the user TTL.",
        handler: setuser,
    },
    CommandDef {
        name: "cache.getuser",
        flags: READ,
        arity: 2,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity: "O(1)",
        args: &[string(c"user_id")],
        summary: "Returns the user record stored at user:<user_id>, or nil.",
        handler: getuser,
    },
    CommandDef {
        name: "cache.setpermissions",
        flags: WRITE,
        arity: -3,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Overwrite,
        complexity: "O(N) where N is the size of the JSON value, which is validated",
        args: &[string(c"user_id"), string(c"json"), TTL],
        summary: "Stores a user's permissions (JSON array) at user_permissions:<user_id>.",
        handler: setpermissions,
    },
    CommandDef {
        name: "cache.getpermissions",
        flags: READ,
        arity: 2,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity: "O(1)",
        args: &[string(c"user_id")],
        summary: "Returns the permissions stored at user_permissions:<user_id>, or nil.",
        handler: getpermissions,
    },
    CommandDef {
        name: "cache.setsession",
        flags: WRITE,
        arity: -3,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Overwrite,
        complexity: "O(N) where N is the size of the JSON value, which is validated",
        args: &[string(c"telegram_id"), string(c"json"), TTL],
        summary: "Stores a session (JSON object) at session:<telegram_id> with the session TTL.",
        handler: setsession,
    },
    CommandDef {
        name: "cache.getsession",
        flags: READ,
        arity: 2,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity: "O(1)",
        args: &[string(c"telegram_id")],
        summary: "Returns the session stored at session:<telegram_id>, or nil.",
        handler: getsession,
    },
    CommandDef {
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
        handler: invalidateuser,
    },
    CommandDef {
        name: "cache.stats",
        flags: "readonly allow-loading allow-stale fast",
        arity: -1,
        route_arg: 0,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity: "O(1)",
        args: &[flag(c"reset", c"RESET")],
        summary: "Hit/miss and rate-limiter counters of this server; RESET zeroes them.",
        handler: cache_stats,
    },

    CommandDef {
        name: "ratelimit.check",
        flags: WRITE,
        arity: -2,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::ReadUpdate,
        complexity: "O(N) where N is the number of requests the limiter holds; O(COST) when denied under its stored rule",
        args: CHECK_ARGS,
        summary: "Exact sliding-window check: admits and records COST requests when within the limit.",
        handler: rl_check,
    },
    CommandDef {
        name: "ratelimit.peek",
        flags: READ_LINEAR,
        arity: -2,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity: "O(N) where N is the number of requests the limiter holds; O(COST) when it would be denied under the stored rule",
        args: CHECK_ARGS,
        summary: "What RATELIMIT.CHECK would answer now, recording nothing.",
        handler: rl_peek,
    },
    CommandDef {
        name: "ratelimit.info",
        flags: READ_LINEAR,
        arity: -2,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity: "O(N) where N is the number of requests the limiter holds",
        args: LIMITER_ARGS,
        summary: "Counted requests, rule and TTL of a limiter.",
        handler: rl_info,
    },
    CommandDef {
        name: "ratelimit.reset",
        flags: "write fast",
        arity: -2,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Delete,
        complexity: "O(1)",
        args: LIMITER_ARGS,
        summary: "Deletes a limiter.",
        handler: rl_reset,
    },
    CommandDef {
        name: "ratelimit.record",
        flags: WRITE,
        arity: 6,
        route_arg: 1,
        route_is_key: true,
        keys: KeyAccess::Update,
        complexity: "O(N) where N is the number of requests the limiter holds",
        args: &[key(c"key"), integer(c"now_ms"), integer(c"limit"), integer(c"window_ms"), integer(c"cost")],
        summary: "Internal: applies an admitted check at an absolute time (what replicas and the AOF receive).",
        handler: rl_record,
    },

    CommandDef {
        name: "cache.setsearch",
        flags: WRITE,
        arity: -4,
        route_arg: 2,
        route_is_key: false,
        keys: KeyAccess::Overwrite,
        complexity: "O(N) where N is the size of the JSON value and of FILTERS",
        args: &[string(c"query"), string(c"user_id"), string(c"json"), FILTERS, TTL],
        summary: "Stores search results at search:<md5(query:user_id:filters)> with the search TTL.",
        handler: setsearch,
    },
    CommandDef {
        name: "cache.getsearch",
        flags: READ_LINEAR,
        arity: -3,
        route_arg: 2,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity: "O(N) where N is the size of FILTERS, which is put in canonical form",
        args: &[string(c"query"), string(c"user_id"), FILTERS],
        summary: "Returns cached search results, or nil.",
        handler: getsearch,
    },
    CommandDef {
        name: "cache.setrag",
        flags: WRITE,
        arity: -5,
        route_arg: 2,
        route_is_key: false,
        keys: KeyAccess::Overwrite,
        complexity: "O(N) where N is the size of the JSON value, which is validated",
        args: &[string(c"query"), string(c"user_id"), string(c"context_hash"), string(c"json"), TTL],
        summary: "Stores a RAG answer at rag_response:<md5(query:user_id:context_hash)>.",
        handler: setrag,
    },
    CommandDef {
        name: "cache.getrag",
        flags: READ_LINEAR,
        arity: 4,
        route_arg: 2,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity: "O(N) where N is the length of the hashed arguments",
        args: &[string(c"query"), string(c"user_id"), string(c"context_hash")],
        summary: "Returns a cached RAG answer, or nil.",
        handler: getrag,
    },
    CommandDef {
        name: "cache.settranslation",
        flags: WRITE,
        arity: -5,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Overwrite,
        complexity: "O(N) where N is the size of the JSON value, which is validated",
        args: &[string(c"text"), string(c"source_lang"), string(c"target_lang"), string(c"json"), TTL],
        summary: "Stores a translation at translation:<md5(text)>:<source>:<target>.",
        handler: settranslation,
    },
    CommandDef {
        name: "cache.gettranslation",
        flags: READ_LINEAR,
        arity: 4,
        route_arg: 1,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity: "O(N) where N is the length of the hashed text",
        args: &[string(c"text"), string(c"source_lang"), string(c"target_lang")],
        summary: "Returns a cached translation, or nil.",
        handler: gettranslation,
    },
    CommandDef {
        name: "cache.key",
        flags: READ_LINEAR,
        arity: -3,
        route_arg: 0,
        route_is_key: false,
        keys: KeyAccess::Read,
        complexity: "O(N) where N is the size of the arguments (FILTERS is put in canonical form)",
        args: &[string(c"kind"), many(string(c"arg"))],
        summary: "The key name the module uses for a kind and the arguments of its GET command.",
        handler: cache_key,
    },
];
