//! CACHE.KEY <kind> <args of the matching GET command>: the key name the module uses.

use crate::error::{CmdError, CmdResult};
use crate::keys;
use crate::kinds::{self, KindId, Scheme};
use crate::redis::command::Args;
use crate::redis::commands::cache::{kind_key, style};
use crate::redis::commands::ratelimit::parse_check_syntax;
use crate::redis::reply::Reply;

/// The table declares at least `<kind> <arg>`; how many arguments a kind
/// takes depends on the kind, which Redis's arity cannot say, so each kind
/// checks its own count here: its GET command's arguments (search also
/// takes FILTERS; options such as FORMAT do not change a key).
pub fn key(reply: &Reply, args: &Args) -> CmdResult {
    let name = args.bytes(1);
    let key = if let Some(kind) = KindId::by_name(name) {
        let needed = 2 + kind.def().get_args.len();
        let fits = if kind.def().scheme == Scheme::Search {
            args.len() >= needed
        } else {
            args.len() == needed
        };
        if !fits {
            return Err(CmdError::WrongArity);
        }
        kind_key(kind, args, 2)?
    } else if name.eq_ignore_ascii_case(b"ratelimit") {
        let a = parse_check_syntax(args, 2)?;
        keys::ratelimit_key(style(), a.action, a.identifier)?
    } else {
        let shown = String::from_utf8_lossy(&name[..name.len().min(32)]).into_owned();
        return Err(CmdError::msg(format!(
            "ERR unknown key kind '{shown}'; kinds: {}, ratelimit",
            kinds::names()
        )));
    };
    reply.bulk(&key);
    Ok(())
}
