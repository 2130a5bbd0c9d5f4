//! RATELIMIT.* against real Redis 7.0 and Valkey 8 servers: the reply maps,
//! the sliding window with real waits, policies, TTLs, bad input and
//! parallel clients.
//!
//! The servers run on this machine, so the test's wall clock is the
//! server's: a server-side time is bounded by the client times taken just
//! before and just after the command.

#[path = "../common/mod.rs"]
mod common;

mod errors;
mod multi;
mod parallel;
mod policies;
mod replies;
mod storage;
mod window;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cmd, err_of, info_int, now_ms, on_each_server, Flavor, Options, Server};
use rand::{Rng, SeedableRng};
use redis::{Connection, Value};

const FIELDS: [&str; 8] = [
    "allowed",
    "current_count",
    "limit",
    "remaining",
    "retry_after",
    "reset_time",
    "retry_after_ms",
    "reset_after_ms",
];

/// A map reply as ordered (field, value) pairs, from a RESP3 map or a RESP2
/// flat array.
fn pairs(v: Value) -> Vec<(String, Value)> {
    let name = |k: &Value| -> String { redis::from_redis_value(k).expect("field name") };
    match v {
        Value::Map(p) => p.iter().map(|(k, v)| (name(k), v.clone())).collect(),
        Value::Array(items) => {
            assert!(items.len() % 2 == 0, "odd flat map: {items:?}");
            items
                .chunks(2)
                .map(|p| (name(&p[0]), p[1].clone()))
                .collect()
        }
        other => panic!("not a map: {other:?}"),
    }
}

/// A CHECK/PEEK reply: fields in contract order, all integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decision {
    allowed: bool,
    count: i64,
    limit: i64,
    remaining: i64,
    retry_after: i64,
    reset_time: i64,
    retry_after_ms: i64,
    reset_after_ms: i64,
}

fn decision(v: Value) -> Decision {
    let p = pairs(v);
    let names: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, FIELDS, "reply fields or their order");
    let n: Vec<i64> = p
        .iter()
        .map(|(k, v)| match v {
            Value::Int(i) => *i,
            other => panic!("{k} is not an integer: {other:?}"),
        })
        .collect();
    let d = Decision {
        allowed: match n[0] {
            0 => false,
            1 => true,
            x => panic!("allowed is {x}"),
        },
        count: n[1],
        limit: n[2],
        remaining: n[3],
        retry_after: n[4],
        reset_time: n[5],
        retry_after_ms: n[6],
        reset_after_ms: n[7],
    };
    // Relations every reply keeps.
    assert_eq!(d.remaining, d.limit - d.count, "{d:?}");
    assert_eq!(d.retry_after, ceil_s(d.retry_after_ms), "{d:?}");
    if d.allowed {
        assert_eq!(d.retry_after_ms, 0, "{d:?}");
    } else {
        assert!(d.retry_after_ms == -1 || d.retry_after_ms > 0, "{d:?}");
    }
    assert!(d.reset_after_ms >= 0, "{d:?}");
    d
}

fn ceil_s(ms: i64) -> i64 {
    if ms < 0 {
        -1
    } else {
        (ms + 999) / 1000
    }
}

/// Runs CHECK (or PEEK) and returns the decision with the client times
/// around it.
fn timed(c: &mut Connection, command: &str, args: &[&str]) -> (Decision, i64, i64) {
    let before = now_ms();
    let v: Value = cmd(command).arg(args).query(c).expect(command);
    let after = now_ms();
    (decision(v), before, after)
}

fn check(c: &mut Connection, args: &[&str]) -> Decision {
    timed(c, "RATELIMIT.CHECK", args).0
}

fn peek(c: &mut Connection, args: &[&str]) -> Decision {
    timed(c, "RATELIMIT.PEEK", args).0
}

struct Info {
    count: i64,
    limit: i64,
    window_ms: i64,
    timestamps: Vec<i64>,
    ttl_ms: i64,
}

fn info(c: &mut Connection, args: &[&str]) -> Info {
    let v: Value = cmd("RATELIMIT.INFO").arg(args).query(c).expect("INFO");
    let p = pairs(v);
    let names: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "current_requests",
            "limit",
            "window_ms",
            "timestamps",
            "ttl_ms",
            "rules"
        ]
    );
    let int = |v: &Value| -> i64 { redis::from_redis_value(v).expect("integer") };
    let timestamps: Vec<i64> = redis::from_redis_value(&p[3].1).expect("timestamps");
    let i = Info {
        count: int(&p[0].1),
        limit: int(&p[1].1),
        window_ms: int(&p[2].1),
        timestamps,
        ttl_ms: int(&p[4].1),
    };
    assert_eq!(i.count, i.timestamps.len() as i64);
    assert!(
        i.timestamps.windows(2).all(|w| w[0] <= w[1]),
        "timestamps oldest first: {:?}",
        i.timestamps
    );
    i
}

fn get_bytes(c: &mut Connection, key: &str) -> Option<Vec<u8>> {
    cmd("GET").arg(key).query(c).expect("GET")
}

/// Everything a failed command must leave alone: the value (DUMP carries
/// type and bytes) and the absolute expiry.
fn snapshot(c: &mut Connection, key: &str) -> (Option<Vec<u8>>, i64) {
    let dump: Option<Vec<u8>> = cmd("DUMP").arg(key).query(c).expect("DUMP");
    let at: i64 = cmd("PEXPIRETIME").arg(key).query(c).expect("PEXPIRETIME");
    (dump, at)
}

fn pexpiretime(c: &mut Connection, key: &str) -> i64 {
    cmd("PEXPIRETIME").arg(key).query(c).expect("PEXPIRETIME")
}

fn sleep_ms(ms: i64) {
    if ms > 0 {
        std::thread::sleep(Duration::from_millis(ms as u64));
    }
}

/// PTTL of the default action's limiter for `id`.
fn pttl(c: &mut Connection, id: &str) -> i64 {
    cmd("PTTL")
        .arg(format!("rate_limit:default:{id}"))
        .query(c)
        .unwrap()
}
