//! CACHE.KEY <kind> <args of the matching GET command>: the key name the module uses.

use crate::error::{CmdError, CmdResult};
use crate::keys::{self, UserKind};
use crate::redis::command::Args;
use crate::redis::commands::cache::style;
use crate::redis::commands::hashed;
use crate::redis::commands::ratelimit::parse_check_syntax;
use crate::redis::reply::Reply;

const KINDS: &str =
    "user, permissions, session, user_with_roles, search, rag, translation, ratelimit";

/// The table declares at least `<kind> <arg>`; how many arguments a kind
/// takes depends on the kind, which Redis's arity cannot say, so each kind
/// checks its own count here.
pub fn key(reply: &Reply, args: &Args) -> CmdResult {
    let kind = args.bytes(1).to_ascii_lowercase();
    let user_kind = match kind.as_slice() {
        b"user" => Some((UserKind::User, "user_id")),
        b"permissions" => Some((UserKind::Permissions, "user_id")),
        b"session" => Some((UserKind::Session, "telegram_id")),
        b"user_with_roles" => Some((UserKind::UserWithRoles, "user_id")),
        _ => None,
    };
    let key = if let Some((ukind, what)) = user_kind {
        if args.len() != 3 {
            return Err(CmdError::WrongArity);
        }
        keys::user_key(style(), ukind, args.bytes(2), what)?
    } else {
        match kind.as_slice() {
            b"search" => {
                if args.len() < 4 {
                    return Err(CmdError::WrongArity);
                }
                let filters = hashed::get_search_filters(args, 4)?;
                hashed::search_key(args, 2, &filters)?
            }
            b"rag" => {
                if args.len() != 5 {
                    return Err(CmdError::WrongArity);
                }
                hashed::rag_key(args, 2)?
            }
            b"translation" => {
                if args.len() != 5 {
                    return Err(CmdError::WrongArity);
                }
                hashed::translation_key(args, 2)?
            }
            b"ratelimit" => {
                let a = parse_check_syntax(args, 2)?;
                keys::ratelimit_key(style(), a.action, a.identifier)?
            }
            _ => {
                let shown = String::from_utf8_lossy(&args.bytes(1)[..args.bytes(1).len().min(32)])
                    .into_owned();
                return Err(CmdError::msg(format!(
                    "ERR unknown key kind '{shown}'; kinds: {KINDS}"
                )));
            }
        }
    };
    reply.bulk(&key);
    Ok(())
}
