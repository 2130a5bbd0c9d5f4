//! Hardening against real Redis 7.0 and Valkey 8 servers: ACL on the keys the
//! module builds, MULTI/EXEC and Lua, maxmemory, MODULE UNLOAD, and the panic
//! guard (with a test build that panics on purpose).

#[path = "../common/mod.rs"]
mod common;
#[path = "../resp/mod.rs"]
mod resp;

mod acl;
mod module_calls;
mod notifications;
mod oom;
mod panics;
mod transactions;
mod unload;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{wait_until, Flavor, Options, Server};
use resp::{RawConn, Resp};

fn bulk(s: &str) -> Resp {
    Resp::Bulk(s.as_bytes().to_vec())
}

fn ok() -> Resp {
    Resp::Simple(b"OK".to_vec())
}

fn call(c: &mut RawConn, args: &[&str]) -> Resp {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.call(&args).expect("reply")
}

fn expect_error(r: &Resp, prefix: &str) -> String {
    match r.error_text() {
        Some(e) if e.starts_with(prefix) => e,
        _ => panic!("expected an error starting with {prefix:?}, got {r:?}"),
    }
}

fn info_field(c: &mut RawConn, section: &str, field: &str) -> String {
    let Resp::Bulk(text) = call(c, &["INFO", section]) else {
        panic!("INFO {section} is not a bulk string");
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .trim()
        .to_string()
}

/// Every key with its DUMP and absolute expiry, sorted.
fn keyspace(c: &mut RawConn) -> Vec<(Vec<u8>, Resp, Resp)> {
    let Resp::Array(keys) = call(c, &["KEYS", "*"]) else {
        panic!("KEYS");
    };
    let mut out = Vec::new();
    for k in keys {
        let Resp::Bulk(k) = k else { panic!("key") };
        let dump = c.call(&[b"DUMP", &k]).unwrap();
        let at = c.call(&[b"PEXPIRETIME", &k]).unwrap();
        out.push((k, dump, at));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn server_with_module(flavor: Flavor, module: &Path, extra: &[&str]) -> Server {
    let mut server_args: Vec<String> = vec!["--loadmodule".into(), module.display().to_string()];
    server_args.extend(extra.iter().map(|s| s.to_string()));
    Server::with(
        flavor,
        Options {
            load_module: false,
            server_args,
            ..Options::default()
        },
    )
}
