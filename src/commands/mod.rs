//! Every command the module registers, with its flags and routing argument.

pub mod cache;
pub mod stats;

use crate::command::CommandDef;
use crate::entry_point;

entry_point!(setuser, cache::setuser);
entry_point!(getuser, cache::getuser);
entry_point!(setpermissions, cache::setpermissions);
entry_point!(getpermissions, cache::getpermissions);
entry_point!(setsession, cache::setsession);
entry_point!(getsession, cache::getsession);
entry_point!(invalidateuser, cache::invalidateuser);
entry_point!(cache_stats, stats::stats);

const WRITE: &str = "write deny-oom fast";
const READ: &str = "readonly fast";

pub const COMMANDS: &[CommandDef] = &[
    CommandDef {
        name: "cache.setuser",
        flags: WRITE,
        arity: -3,
        route_arg: 1,
        route_is_key: false,
        summary: "Stores a user record (JSON object) at user:<user_id> with the user TTL.",
        handler: setuser,
    },
    CommandDef {
        name: "cache.getuser",
        flags: READ,
        arity: 2,
        route_arg: 1,
        route_is_key: false,
        summary: "Returns the user record stored at user:<user_id>, or nil.",
        handler: getuser,
    },
    CommandDef {
        name: "cache.setpermissions",
        flags: WRITE,
        arity: -3,
        route_arg: 1,
        route_is_key: false,
        summary: "Stores a user's permissions (JSON array) at user_permissions:<user_id>.",
        handler: setpermissions,
    },
    CommandDef {
        name: "cache.getpermissions",
        flags: READ,
        arity: 2,
        route_arg: 1,
        route_is_key: false,
        summary: "Returns the permissions stored at user_permissions:<user_id>, or nil.",
        handler: getpermissions,
    },
    CommandDef {
        name: "cache.setsession",
        flags: WRITE,
        arity: -3,
        route_arg: 1,
        route_is_key: false,
        summary: "Stores a session (JSON object) at session:<telegram_id> with the session TTL.",
        handler: setsession,
    },
    CommandDef {
        name: "cache.getsession",
        flags: READ,
        arity: 2,
        route_arg: 1,
        route_is_key: false,
        summary: "Returns the session stored at session:<telegram_id>, or nil.",
        handler: getsession,
    },
    CommandDef {
        name: "cache.invalidateuser",
        flags: "write fast",
        arity: 2,
        route_arg: 1,
        route_is_key: false,
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
        summary: "Hit/miss and rate-limiter counters of this server; RESET zeroes them.",
        handler: cache_stats,
    },
];
