//! Test builds only (`cargo build --features panic-test`): `CACHEKIT.DEBUGPANIC
//! <mode>` fails in each way the guard must survive. The normal build has no
//! such command.

use crate::error::{CmdError, CmdResult};
use crate::redis::command::{command, Args, Command, CommandDef, KeyAccess};
use crate::redis::command_docs::string;
use crate::redis::reply::Reply;

pub const MODES: &str = "before, mid-map, nested, after, error-mid, short, twice, none, ok";

fn handler(reply: &Reply, args: &Args) -> CmdResult {
    let mode = args.bytes(1);
    match mode {
        b"before" => panic!("deliberate panic before any reply (test build)"),
        b"mid-map" => {
            reply.map(2);
            reply.field("a");
            reply.int(1);
            panic!("deliberate panic in the middle of a map (test build)");
        }
        b"nested" => {
            reply.map(1);
            reply.field("x");
            reply.array(3);
            reply.int(1);
            panic!("deliberate panic inside a nested array (test build)");
        }
        b"after" => {
            reply.ok();
            panic!("deliberate panic after the reply (test build)");
        }
        b"error-mid" => {
            reply.array(3);
            reply.int(1);
            Err(CmdError::Static(
                "ERR deliberate error after a partial reply",
            ))
        }
        b"short" => {
            reply.array(2);
            reply.int(1);
            Ok(())
        }
        b"twice" => {
            reply.ok();
            reply.ok();
            Ok(())
        }
        b"none" => Ok(()),
        b"ok" => {
            reply.map(1);
            reply.field("ok");
            reply.int(1);
            Ok(())
        }
        _ => Err(CmdError::msg(format!("ERR unknown mode; modes: {MODES}"))),
    }
}

pub static COMMAND: Command = command!(CommandDef {
    name: "cachekit.debugpanic",
    flags: "readonly fast",
    arity: 2,
    route_arg: 0,
    route_is_key: false,
    keys: KeyAccess::Read,
    complexity: "O(1)",
    args: &[string(c"mode")],
    summary: "Test builds only: fails in a chosen way to exercise the panic guard.",
    handler,
});
