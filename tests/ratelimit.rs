//! RATELIMIT.* against real Redis 7.0 and Valkey 8 servers: the reply maps,
//! the sliding window with real waits, policies, TTLs, bad input and
//! parallel clients.
//!
//! The servers run on this machine, so the test's wall clock is the
//! server's: a server-side time is bounded by the client times taken just
//! before and just after the command.

mod common;

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
            "ttl_ms"
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

#[test]
fn reply_maps_keep_the_contract_order() {
    on_each_server(|s| {
        for resp3 in [false, true] {
            let mut c = if resp3 { s.conn_resp3() } else { s.conn() };
            let id = if resp3 { "order3" } else { "order2" };
            let raw: Value = cmd("RATELIMIT.CHECK")
                .arg(&[id, "5", "10"])
                .query(&mut c)
                .unwrap();
            match (&raw, resp3) {
                (Value::Map(_), true) | (Value::Array(_), false) => {}
                (other, _) => panic!("resp3={resp3}: unexpected reply shape {other:?}"),
            }
            let d = decision(raw);
            assert!(d.allowed);
            assert_eq!((d.count, d.limit, d.remaining), (1, 5, 4));
            let p = peek(&mut c, &[id, "5", "10"]);
            assert_eq!((p.allowed, p.count, p.remaining), (true, 2, 3));
            let i = info(&mut c, &[id]);
            assert_eq!((i.count, i.limit, i.window_ms), (1, 5, 10_000));
        }
    });
}

#[test]
fn first_check_reports_exact_figures() {
    on_each_server(|s| {
        let mut c = s.conn();
        let (d, before, after) = timed(&mut c, "RATELIMIT.CHECK", &["fresh", "3", "7"]);
        assert_eq!(
            (d.allowed, d.count, d.limit, d.remaining, d.retry_after_ms),
            (true, 1, 3, 2, 0)
        );
        // The request just admitted is the oldest: it leaves in a full window.
        assert_eq!(d.reset_after_ms, 7_000);
        let i = info(&mut c, &["fresh"]);
        let t = i.timestamps[0];
        assert!((before..=after).contains(&t), "{before} <= {t} <= {after}");
        assert_eq!(d.reset_time, ceil_s(t + 7_000), "reset_time rounds up");

        // Nothing counted: reset_time is now (rounded up), reset_after_ms 0.
        let (d, before, after) = timed(&mut c, "RATELIMIT.PEEK", &["none", "3", "7", "COST", "4"]);
        assert_eq!(
            (d.allowed, d.count, d.retry_after_ms, d.reset_after_ms),
            (false, 0, -1, 0)
        );
        assert!((ceil_s(before)..=ceil_s(after)).contains(&d.reset_time));
    });
}

#[test]
fn window_edges_with_real_waits() {
    on_each_server(|s| {
        let mut c = s.conn();
        let args = ["edge", "2", "1"];
        assert!(check(&mut c, &args).allowed);
        sleep_ms(400);
        let d = check(&mut c, &args);
        assert_eq!((d.allowed, d.count, d.remaining), (true, 2, 0));
        let stamps = info(&mut c, &["edge"]).timestamps;
        assert_eq!(stamps.len(), 2);

        let (d, before, after) = timed(&mut c, "RATELIMIT.CHECK", &args);
        assert!(!d.allowed);
        assert_eq!((d.count, d.remaining, d.retry_after), (2, 0, 1));
        // Exactly until the oldest leaves: oldest + window - now.
        let (lo, hi) = (stamps[0] + 1_000 - after, stamps[0] + 1_000 - before);
        assert!(
            (lo..=hi).contains(&d.retry_after_ms),
            "{lo} <= {} <= {hi}",
            d.retry_after_ms
        );
        assert_eq!(d.reset_after_ms, d.retry_after_ms);

        // Waiting exactly retry_after_ms is enough.
        sleep_ms(d.retry_after_ms);
        let (d, before, after) = timed(&mut c, "RATELIMIT.CHECK", &args);
        assert!(d.allowed, "after waiting retry_after_ms: {d:?}");
        let i = info(&mut c, &["edge"]);
        assert_ne!(i.timestamps[0], stamps[0], "the oldest left");
        // The second request counts until exactly stamps[1] + 1 s.
        if after < stamps[1] + 1_000 {
            assert_eq!(d.count, 2);
            assert_eq!(i.timestamps[0], stamps[1]);
        } else if before >= stamps[1] + 1_000 {
            assert_eq!(d.count, 1);
        }
        if after < stamps[1] + 1_000 {
            // The second request is provably still counted: denied again,
            // and told to wait until it leaves.
            let (d, before, _) = timed(&mut c, "RATELIMIT.PEEK", &args);
            if before < stamps[1] + 1_000 {
                assert!(!d.allowed);
                assert!(d.retry_after_ms <= stamps[1] + 1_000 - before);
            }
        }

        // Everything leaves the window: the key expires by itself.
        let at = pexpiretime(&mut c, "rate_limit:default:edge");
        let newest = *i.timestamps.last().unwrap();
        assert!(
            (newest + 1_000..=newest + 2_000).contains(&at),
            "expiry {at}, newest {newest}"
        );
        sleep_ms(at - now_ms() + 50);
        let exists: i64 = cmd("EXISTS")
            .arg("rate_limit:default:edge")
            .query(&mut c)
            .unwrap();
        assert_eq!(exists, 0, "expired once its window is empty");
        let d = check(&mut c, &args);
        assert_eq!((d.allowed, d.count), (true, 1));
    });
}

#[test]
fn retry_after_is_exact_with_costs() {
    on_each_server(|s| {
        let mut c = s.conn();
        let args = |cost: &'static str| ["exact", "3", "1", "COST", cost];
        assert!(check(&mut c, &args("1")).allowed);
        sleep_ms(400);
        assert!(check(&mut c, &args("2")).allowed);
        let t = info(&mut c, &["exact"]).timestamps;
        assert_eq!(t.len(), 3);
        assert_eq!(t[1], t[2], "one time per unit of cost");

        // Cost 1 needs one unit to leave (the first request), cost 2 and 3
        // need the units of the second request to leave too.
        for (cost, oldest_needed) in [("1", t[0]), ("2", t[1]), ("3", t[1])] {
            let (d, before, after) = timed(&mut c, "RATELIMIT.PEEK", &args(cost));
            assert!(!d.allowed, "cost {cost}");
            let (lo, hi) = (
                oldest_needed + 1_000 - after,
                oldest_needed + 1_000 - before,
            );
            assert!(
                (lo..=hi).contains(&d.retry_after_ms),
                "cost {cost}: {lo} <= {} <= {hi}",
                d.retry_after_ms
            );
            let (lo, hi) = (t[0] + 1_000 - after, t[0] + 1_000 - before);
            assert!((lo..=hi).contains(&d.reset_after_ms), "{d:?}");
        }
        let d = peek(&mut c, &args("1"));
        sleep_ms(d.retry_after_ms);
        let (d1, _, after) = timed(&mut c, "RATELIMIT.PEEK", &args("1"));
        assert!(d1.allowed, "cost 1 after its retry_after_ms: {d1:?}");
        if after < t[1] + 1_000 {
            let d2 = peek(&mut c, &args("2"));
            assert!(
                !d2.allowed,
                "never early: the cost-2 request is still counted"
            );
        }
        let d = check(&mut c, &args("1"));
        assert!(d.allowed);
    });
}

#[test]
fn cost_counts_units_and_cost_above_limit_is_never_allowed() {
    on_each_server(|s| {
        let mut c = s.conn();
        let key = "rate_limit:default:cost";
        let d = check(&mut c, &["cost", "5", "60", "COST", "6"]);
        assert_eq!(
            (
                d.allowed,
                d.count,
                d.retry_after,
                d.retry_after_ms,
                d.reset_after_ms
            ),
            (false, 0, -1, -1, 0)
        );
        assert_eq!(
            get_bytes(&mut c, key),
            None,
            "a denied check records nothing"
        );

        let d = check(&mut c, &["cost", "5", "60", "COST", "3"]);
        assert_eq!((d.allowed, d.count, d.remaining), (true, 3, 2));
        let before = snapshot(&mut c, key);
        let d = check(&mut c, &["cost", "5", "60", "COST", "3"]);
        assert_eq!((d.allowed, d.count, d.remaining), (false, 3, 2));
        assert!(
            d.retry_after_ms > 58_000 && d.retry_after_ms <= 60_000,
            "{d:?}"
        );
        let d = check(&mut c, &["cost", "5", "60", "COST", "6"]);
        assert_eq!((d.allowed, d.count, d.retry_after_ms), (false, 3, -1));
        assert_eq!(
            snapshot(&mut c, key),
            before,
            "denied checks change nothing"
        );
        let d = check(&mut c, &["cost", "5", "60", "cost", "2"]);
        assert_eq!((d.allowed, d.count, d.remaining), (true, 5, 0));
        let i = info(&mut c, &["cost"]);
        assert_eq!(i.count, 5);
        assert_eq!(i.timestamps[0], i.timestamps[2]);
        assert_eq!(i.timestamps[3], i.timestamps[4]);

        // cost == limit on an empty limiter is allowed.
        let d = check(&mut c, &["whole", "4", "60", "COST", "4"]);
        assert_eq!((d.allowed, d.count, d.remaining), (true, 4, 0));

        // A lower limit than what is counted: remaining is limit - count.
        let d = check(&mut c, &["whole", "2", "60"]);
        assert_eq!((d.allowed, d.count, d.remaining), (false, 4, -2));
        let d = peek(&mut c, &["whole", "1", "60"]);
        assert_eq!((d.allowed, d.count, d.remaining), (false, 4, -3));
    });
}

#[test]
fn policies_by_action_and_config_set() {
    on_each_server(|s| {
        let mut c = s.conn();
        let policies = |c: &mut Connection| -> String {
            let v: Vec<String> = cmd("CONFIG")
                .arg(&["GET", "cachekit.ratelimit-policies"])
                .query(c)
                .unwrap();
            v[1].clone()
        };
        assert_eq!(policies(&mut c), "default:100/60 search:20/60 upload:5/60");

        let d = check(&mut c, &["u1"]);
        assert_eq!((d.limit, d.count), (100, 1));
        assert!(d.reset_after_ms == 60_000);
        let d = check(&mut c, &["u1", "ACTION", "search"]);
        assert_eq!((d.limit, d.count), (20, 1));
        for _ in 0..4 {
            assert!(check(&mut c, &["u1", "action", "upload"]).allowed);
        }
        let d = check(&mut c, &["u1", "ACTION", "upload"]);
        assert_eq!((d.allowed, d.count, d.limit), (true, 5, 5));
        assert!(!check(&mut c, &["u1", "ACTION", "upload"]).allowed);
        let keys: HashSet<String> = cmd("KEYS").arg("rate_limit:*").query(&mut c).unwrap();
        let want: HashSet<String> = [
            "rate_limit:default:u1",
            "rate_limit:search:u1",
            "rate_limit:upload:u1",
        ]
        .iter()
        .map(|k| k.to_string())
        .collect();
        assert_eq!(keys, want);

        // Unknown action: an error unless the limit is explicit.
        let e = err_of(
            &mut c,
            cmd("RATELIMIT.CHECK").arg(&["u1", "ACTION", "login"]),
        );
        assert!(
            e.starts_with("ERR no rate limit policy for action 'login'"),
            "{e}"
        );
        let e = err_of(
            &mut c,
            cmd("RATELIMIT.PEEK").arg(&["u1", "ACTION", "login"]),
        );
        assert!(e.starts_with("ERR no rate limit policy"), "{e}");
        let d = check(&mut c, &["u1", "2", "30", "ACTION", "login"]);
        assert_eq!((d.limit, d.count), (2, 1));
        // An explicit limit overrides the action's policy.
        let d = check(&mut c, &["u1", "7", "60", "ACTION", "search"]);
        assert_eq!((d.limit, d.count), (7, 2));

        let _: () = cmd("CONFIG")
            .arg(&[
                "SET",
                "cachekit.ratelimit-policies",
                "  default:3/1   login:2/5 ",
            ])
            .query(&mut c)
            .unwrap();
        assert_eq!(policies(&mut c), "default:3/1 login:2/5");
        let d = check(&mut c, &["u2"]);
        assert_eq!((d.limit, d.reset_after_ms), (3, 1_000));
        let d = check(&mut c, &["u2", "ACTION", "login"]);
        assert_eq!((d.limit, d.reset_after_ms), (2, 5_000));
        let e = err_of(
            &mut c,
            cmd("RATELIMIT.CHECK").arg(&["u2", "ACTION", "search"]),
        );
        assert!(
            e.starts_with("ERR no rate limit policy for action 'search'"),
            "{e}"
        );
        // INFO of an unknown limiter shows the action's policy.
        let i = info(&mut c, &["nobody", "ACTION", "login"]);
        assert_eq!((i.count, i.limit, i.window_ms, i.ttl_ms), (0, 2, 5_000, -2));

        for bad in [
            "default",
            "default:0/60",
            "default:10/0",
            "default:1000001/60",
            "default:10/2592001",
            "default:x/60",
            "default:10/60 default:5/60",
            ":10/60",
            "a:1/1/1",
            "default:10/60 broken",
            // A NUL could not be shown by CONFIG GET or written by CONFIG
            // REWRITE; an error quoting it must not break the reply either.
            "a\0b:1/1",
            "a\0b",
            "a\u{1}b:1/1",
        ] {
            let r: redis::RedisResult<()> = cmd("CONFIG")
                .arg(&["SET", "cachekit.ratelimit-policies", bad])
                .query(&mut c);
            let e = r.expect_err(&format!("accepted {bad:?}"));
            assert_eq!(e.code(), Some("ERR"), "{bad:?}: {e:?}");
            assert_eq!(policies(&mut c), "default:3/1 login:2/5", "after {bad:?}");
        }
        // Many policies parse in linear time (the duplicate check included).
        let many: Vec<String> = (0..50_000).map(|i| format!("p{i}:1/1")).collect();
        let _: () = cmd("CONFIG")
            .arg(&["SET", "cachekit.ratelimit-policies", &many.join(" ")])
            .query(&mut c)
            .unwrap();
        assert_eq!(policies(&mut c), many.join(" "));
        let _: () = cmd("CONFIG")
            .arg(&[
                "SET",
                "cachekit.ratelimit-policies",
                "default:3/1 login:2/5",
            ])
            .query(&mut c)
            .unwrap();
        // An empty policy list is valid: every check must then be explicit.
        let _: () = cmd("CONFIG")
            .arg(&["SET", "cachekit.ratelimit-policies", ""])
            .query(&mut c)
            .unwrap();
        let e = err_of(&mut c, cmd("RATELIMIT.CHECK").arg("u3"));
        assert!(
            e.starts_with("ERR no rate limit policy for action 'default'"),
            "{e}"
        );
    });

    // As a loadmodule argument.
    for flavor in Flavor::ALL {
        let s = Server::with_module_args(flavor, &["ratelimit-policies", "default:2/10 api:9/30"]);
        let mut c = s.conn();
        let d = check(&mut c, &["x", "ACTION", "api"]);
        assert_eq!((d.limit, d.reset_after_ms), (9, 30_000));
        assert_eq!(check(&mut c, &["x"]).limit, 2);
        s.assert_log_clean();
        let bad = Server::try_start(
            flavor,
            &Options {
                module_args: vec!["ratelimit-policies".into(), "default:0/10".into()],
                ..Options::default()
            },
        );
        assert!(
            bad.is_err(),
            "{} loaded with a malformed policy",
            flavor.binary()
        );
    }
}

#[test]
fn peek_records_nothing() {
    on_each_server(|s| {
        let mut c = s.conn();
        let key = "rate_limit:default:peeker";
        let d = peek(&mut c, &["peeker", "3", "60", "COST", "2"]);
        assert_eq!((d.allowed, d.count, d.remaining), (true, 2, 1));
        assert_eq!(get_bytes(&mut c, key), None);
        assert!(check(&mut c, &["peeker", "3", "60"]).allowed);
        let before = snapshot(&mut c, key);
        let dirty = info_int(&mut c, "persistence", "rdb_changes_since_last_save");
        for cost in ["1", "2", "3", "4"] {
            let d = peek(&mut c, &["peeker", "3", "60", "COST", cost]);
            let n: i64 = cost.parse().unwrap();
            assert_eq!(d.allowed, n < 3, "cost {cost}: 1 counted + {n} within 3");
            assert_eq!(d.count, if d.allowed { 1 + n } else { 1 });
        }
        assert_eq!(snapshot(&mut c, key), before);
        assert_eq!(
            info_int(&mut c, "persistence", "rdb_changes_since_last_save"),
            dirty
        );
        assert_eq!(info(&mut c, &["peeker"]).count, 1);
    });
}

#[test]
fn info_lists_one_timestamp_per_unit_and_the_ttl() {
    on_each_server(|s| {
        let mut c = s.conn();
        let (_, b0, a0) = timed(&mut c, "RATELIMIT.CHECK", &["inf", "10", "20", "COST", "2"]);
        sleep_ms(5);
        let (_, b1, a1) = timed(&mut c, "RATELIMIT.CHECK", &["inf", "10", "20"]);
        let (_, b2, a2) = timed(&mut c, "RATELIMIT.CHECK", &["inf", "10", "20", "COST", "3"]);
        let before = now_ms();
        let i = info(&mut c, &["inf"]);
        let after = now_ms();
        assert_eq!((i.count, i.limit, i.window_ms), (6, 10, 20_000));
        let t = &i.timestamps;
        assert!((b0..=a0).contains(&t[0]) && t[0] == t[1]);
        assert!((b1..=a1).contains(&t[2]));
        assert!((b2..=a2).contains(&t[3]) && t[3] == t[4] && t[4] == t[5]);
        // ttl_ms: until the newest leaves, rounded up to a whole second.
        let until = t[5] + 20_000;
        assert!(
            i.ttl_ms >= until - after && i.ttl_ms <= until - before + 1_000,
            "ttl {} for newest leaving at {until}",
            i.ttl_ms
        );
        let i = info(&mut c, &["inf", "ACTION", "default"]);
        assert_eq!(i.count, 6);
        // Unknown limiter.
        let i = info(&mut c, &["nobody"]);
        assert_eq!(
            (i.count, i.limit, i.window_ms, i.ttl_ms),
            (0, 100, 60_000, -2)
        );
        assert!(i.timestamps.is_empty());
    });
}

#[test]
fn reset_deletes_the_limiter() {
    on_each_server(|s| {
        let mut c = s.conn();
        for _ in 0..2 {
            check(&mut c, &["r", "2", "60"]);
            check(&mut c, &["r", "2", "60", "ACTION", "search"]);
        }
        assert!(!check(&mut c, &["r", "2", "60"]).allowed);
        let n: i64 = cmd("RATELIMIT.RESET").arg("r").query(&mut c).unwrap();
        assert_eq!(n, 1);
        let n: i64 = cmd("RATELIMIT.RESET").arg("r").query(&mut c).unwrap();
        assert_eq!(n, 0);
        assert_eq!(get_bytes(&mut c, "rate_limit:default:r"), None);
        assert!(
            get_bytes(&mut c, "rate_limit:search:r").is_some(),
            "other actions stay"
        );
        let d = check(&mut c, &["r", "2", "60"]);
        assert_eq!((d.allowed, d.count), (true, 1));
        let n: i64 = cmd("RATELIMIT.RESET")
            .arg(&["r", "ACTION", "search"])
            .query(&mut c)
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(get_bytes(&mut c, "rate_limit:search:r"), None);
    });
}

#[test]
fn key_ttl_follows_the_newest_request() {
    on_each_server(|s| {
        let mut c = s.conn();
        let key = "rate_limit:default:ttl";
        for round in 0..4 {
            check(&mut c, &["ttl", "100", "3"]);
            let newest = *info(&mut c, &["ttl"]).timestamps.last().unwrap();
            let at = pexpiretime(&mut c, key);
            // Never before the newest request leaves, at most 1 s after.
            assert!(
                at >= newest + 3_000 && at <= newest + 3_000 + 1_000,
                "round {round}: expiry {at}, newest {newest}"
            );
            assert_eq!(at % 1_000, 0, "whole seconds");
            sleep_ms(230);
        }
        // A denied check and a peek leave the expiry alone.
        let at = pexpiretime(&mut c, key);
        check(&mut c, &["ttl", "1", "3"]);
        peek(&mut c, &["ttl", "100", "3"]);
        assert_eq!(pexpiretime(&mut c, key), at);
    });
}

#[test]
fn allowed_checks_dirty_the_dataset() {
    on_each_server(|s| {
        let mut c = s.conn();
        let dirty = |c: &mut Connection| info_int(c, "persistence", "rdb_changes_since_last_save");
        let d0 = dirty(&mut c);
        assert!(check(&mut c, &["dirty", "2", "60"]).allowed);
        let d1 = dirty(&mut c);
        assert!(
            d1 > d0,
            "an allowed check must count as a change ({d0} -> {d1})"
        );
        assert!(check(&mut c, &["dirty", "2", "60"]).allowed);
        let d2 = dirty(&mut c);
        assert!(d2 > d1);
        assert!(!check(&mut c, &["dirty", "2", "60"]).allowed);
        assert_eq!(dirty(&mut c), d2, "a denied check changes nothing");
        let _: i64 = cmd("RATELIMIT.RESET").arg("dirty").query(&mut c).unwrap();
        assert!(dirty(&mut c) > d2);
    });
}

/// Each bad command must fail with `prefix` and leave the limiter as it was.
#[test]
fn bad_input_is_refused_and_changes_nothing() {
    on_each_server(|s| {
        let mut c = s.conn();
        let key = "rate_limit:default:bad";
        check(&mut c, &["bad", "5", "60", "COST", "2"]);
        let before = snapshot(&mut c, key);
        let cases: &[(&str, &[&str], &str)] = &[
            ("RATELIMIT.CHECK", &[], "ERR wrong number of arguments"),
            ("RATELIMIT.PEEK", &[], "ERR wrong number of arguments"),
            ("RATELIMIT.INFO", &[], "ERR wrong number of arguments"),
            ("RATELIMIT.RESET", &[], "ERR wrong number of arguments"),
            (
                "RATELIMIT.CHECK",
                &["bad", "abc", "60"],
                "ERR limit is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "1.5", "60"],
                "ERR limit is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "0", "60"],
                "ERR limit is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "-3", "60"],
                "ERR limit is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "1000001", "60"],
                "ERR limit is not an integer or out of range (allowed: 1 to 1000000)",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "99999999999999999999", "60"],
                "ERR limit is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "", "60"],
                "ERR limit is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "0"],
                "ERR window_seconds is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "x"],
                "ERR window_seconds is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "2592001"],
                "ERR window_seconds is not an integer or out of range (allowed: 1 to 2592000)",
            ),
            ("RATELIMIT.CHECK", &["bad", "5"], "ERR syntax error"),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "COST", "0"],
                "ERR COST is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "COST", "-1"],
                "ERR COST is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "COST", "two"],
                "ERR COST is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "COST", "1000001"],
                "ERR COST is not an integer or out of range (allowed: 1 to 1000000)",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "COST"],
                "ERR syntax error: COST needs a value; allowed options are [<limit> <window_seconds>] [ACTION <action>] [COST <n>]",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "ACTION"],
                "ERR syntax error: ACTION needs a value",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "ACTION", "a", "COST", "2", "action", "b"],
                "ERR syntax error: action is given twice",
            ),
            (
                "RATELIMIT.PEEK",
                &["bad", "5", "60", "COST", "2", "COST", "1"],
                "ERR syntax error: COST is given twice",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5"],
                "ERR syntax error: <limit> needs <window_seconds> after it",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "FOO"],
                "ERR syntax error near 'FOO'",
            ),
            (
                "RATELIMIT.INFO",
                &["bad", "ACTION"],
                "ERR syntax error: ACTION needs a value; allowed options are [ACTION <action>]",
            ),
            (
                "RATELIMIT.RESET",
                &["bad", "ACTION", "a", "ACTION", "b"],
                "ERR syntax error: ACTION is given twice",
            ),
            (
                "RATELIMIT.INFO",
                &["bad", "ACTION", "a", "extra"],
                "ERR syntax error near 'extra'",
            ),
            (
                "RATELIMIT.INFO",
                &["bad", "NOPE", "a"],
                "ERR syntax error near 'NOPE'",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "FOO", "1"],
                "ERR syntax error near 'FOO'",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "ACTION", "nope"],
                "ERR no rate limit policy for action 'nope'",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "ACTION", ""],
                "ERR action must be",
            ),
            (
                "RATELIMIT.CHECK",
                &["", "5", "60"],
                "ERR identifier must not be empty",
            ),
            (
                "RATELIMIT.PEEK",
                &["bad", "5", "0"],
                "ERR window_seconds is not an integer or out of range",
            ),
            (
                "RATELIMIT.PEEK",
                &["bad", "5", "60", "COST", "0"],
                "ERR COST is not an integer or out of range",
            ),
            ("RATELIMIT.INFO", &["bad", "ACTION"], "ERR syntax error"),
            ("RATELIMIT.INFO", &["bad", "FOO", "x"], "ERR syntax error"),
            ("RATELIMIT.RESET", &["bad", "FOO", "x"], "ERR syntax error"),
            ("RATELIMIT.RESET", &["bad", "ACTION"], "ERR syntax error"),
            (
                "RATELIMIT.RECORD",
                &[key, "x", "5", "60000", "1"],
                "ERR at_ms is not an integer or out of range",
            ),
            (
                "RATELIMIT.RECORD",
                &[key, "1", "5", "999", "1"],
                "ERR window_ms is not an integer or out of range",
            ),
            (
                "RATELIMIT.RECORD",
                &[key, "1", "5", "60000"],
                "ERR wrong number of arguments",
            ),
        ];
        for (command, args, prefix) in cases {
            let e = err_of(&mut c, cmd(command).arg(*args));
            assert!(
                e.starts_with(prefix),
                "{command} {args:?}: got {e:?}, want {prefix:?}"
            );
            assert_eq!(
                snapshot(&mut c, key),
                before,
                "{command} {args:?} changed the limiter"
            );
        }
        let i = info(&mut c, &["bad"]);
        assert_eq!((i.count, i.limit), (2, 5));
    });
}

/// PTTL of the default action's limiter for `id`.
fn pttl(c: &mut Connection, id: &str) -> i64 {
    cmd("PTTL")
        .arg(format!("rate_limit:default:{id}"))
        .query(c)
        .unwrap()
}

#[test]
fn info_reports_the_rule_of_the_last_check() {
    on_each_server(|s| {
        let mut c = s.conn();
        assert!(check(&mut c, &["lr", "5", "10"]).allowed);
        // Denied under another rule with a window at least as long: that
        // rule is stored, nothing dropped.
        assert!(!check(&mut c, &["lr", "1", "60"]).allowed);
        let i = info(&mut c, &["lr"]);
        assert_eq!((i.count, i.limit, i.window_ms), (1, 1, 60_000));
        assert!(
            i.ttl_ms > 50_000,
            "TTL follows the stored window: {}",
            i.ttl_ms
        );
        // A PEEK under yet another rule only reads.
        assert!(!peek(&mut c, &["lr", "1", "120"]).allowed);
        let i = info(&mut c, &["lr"]);
        assert_eq!((i.limit, i.window_ms), (1, 60_000));
        assert!(check(&mut c, &["lr", "5", "60"]).allowed);
        let i = info(&mut c, &["lr"]);
        assert_eq!((i.count, i.limit, i.window_ms), (2, 5, 60_000));
    });
}

/// A refused request must not erase admitted ones: a denied check under a
/// shorter window than the stored one writes nothing, since its earlier
/// expiry would drop requests that still count under the stored window.
#[test]
fn a_denied_check_under_a_shorter_window_keeps_the_counted_requests() {
    on_each_server(|s| {
        let mut c = s.conn();
        for _ in 0..4 {
            assert!(check(&mut c, &["sw", "4", "60"]).allowed);
        }
        let key = "rate_limit:default:sw";
        let before = snapshot(&mut c, key);
        // Denied whatever the timing: cost 3 is above limits 1 and 2, and
        // 4 counted + 3 is above 6.
        for rule in [["1", "1"], ["2", "1"], ["6", "59"]] {
            let d = check(&mut c, &["sw", rule[0], rule[1], "COST", "3"]);
            assert!(!d.allowed, "{rule:?}: {d:?}");
            assert_eq!(
                snapshot(&mut c, key),
                before,
                "{rule:?} changed the limiter"
            );
        }
        let i = info(&mut c, &["sw"]);
        assert_eq!((i.count, i.limit, i.window_ms), (4, 4, 60_000));
        assert!(pttl(&mut c, "sw") > 55_000);
        // After the short window has passed, the 60 s rule still counts 4.
        std::thread::sleep(std::time::Duration::from_millis(2_100));
        let d = check(&mut c, &["sw", "4", "60"]);
        assert_eq!((d.allowed, d.count), (false, 4), "{d:?}");
    });
}

#[test]
fn a_longer_window_keeps_a_denied_limiter_alive() {
    on_each_server(|s| {
        let mut c = s.conn();
        assert!(check(&mut c, &["pu", "1", "1"]).allowed);
        // The policy grows to 100 s: the request counts for 100 s, and the
        // key must not expire after the 1 s it was stored with.
        let d = check(&mut c, &["pu", "1", "100"]);
        assert!(!d.allowed);
        assert!(d.retry_after >= 99, "{d:?}");
        let ttl = pttl(&mut c, "pu");
        assert!(ttl > 98_000, "PTTL {ttl}");
        std::thread::sleep(std::time::Duration::from_millis(2_200));
        let d = check(&mut c, &["pu", "1", "100"]);
        assert!(
            !d.allowed,
            "admitted after 2 s although told to wait 100: {d:?}"
        );
        assert!(d.retry_after >= 97, "{d:?}");
        assert!(!peek(&mut c, &["pu", "1", "100"]).allowed);
        // Back to the 1 s rule: the old request has left that window, so the
        // check is admitted and the expiry follows the new state again.
        assert!(check(&mut c, &["pu", "1", "1"]).allowed);
        let ttl = pttl(&mut c, "pu");
        assert!((0..=2_000).contains(&ttl), "PTTL {ttl}");

        // The denied check stored the longer rule, so an admitted check
        // under the shorter one right after moves the expiry back.
        assert!(check(&mut c, &["pv", "2", "1"]).allowed);
        assert!(!check(&mut c, &["pv", "1", "100"]).allowed);
        let i = info(&mut c, &["pv"]);
        assert_eq!((i.count, i.limit, i.window_ms), (1, 1, 100_000));
        assert!(check(&mut c, &["pv", "2", "1"]).allowed);
        let ttl = pttl(&mut c, "pv");
        assert!((0..=2_000).contains(&ttl), "PTTL {ttl}");
    });
}

#[test]
fn other_types_and_corrupted_values_give_errors() {
    on_each_server(|s| {
        let mut c = s.conn();
        let key = "rate_limit:default:other";
        let _: i64 = cmd("RPUSH").arg(&[key, "a", "b"]).query(&mut c).unwrap();
        let before = snapshot(&mut c, key);
        for (command, args) in [
            ("RATELIMIT.CHECK", vec!["other", "5", "60"]),
            ("RATELIMIT.PEEK", vec!["other", "5", "60"]),
            ("RATELIMIT.INFO", vec!["other"]),
            ("RATELIMIT.RESET", vec!["other"]),
            ("RATELIMIT.RECORD", vec![key, "1", "5", "60000", "1"]),
        ] {
            let e = err_of(&mut c, cmd(command).arg(&args));
            assert!(e.starts_with("WRONGTYPE"), "{command}: {e}");
            assert_eq!(snapshot(&mut c, key), before, "{command} changed a list");
        }

        // Garbage written with SET: a clear error, nothing changed, and
        // RESET is the way out.
        let mut garbage: Vec<Vec<u8>> = vec![
            b"hello".to_vec(),
            b"".to_vec(),
            b"100".to_vec(),
            vec![0xC1],
            vec![0xC1, 0x05],
            vec![0xC1, 0x05, 0x90, 0x4E, 0x02, 0x00, 0xFF],
        ];
        // A valid value of several entries with every possible truncation
        // and one flipped byte.
        check(&mut c, &["model", "50", "60", "COST", "3"]);
        for _ in 0..4 {
            check(&mut c, &["model", "50", "60"]);
        }
        let good = get_bytes(&mut c, "rate_limit:default:model").unwrap();
        for n in 0..good.len() {
            garbage.push(good[..n].to_vec());
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..60 {
            let mut v = good.clone();
            let i = rng.gen_range(0..v.len());
            v[i] ^= 1 << rng.gen_range(0..8);
            garbage.push(v);
        }
        for _ in 0..60 {
            let len = rng.gen_range(1..40);
            let mut v: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            v[0] = 0xC1;
            garbage.push(v);
        }
        let key = "rate_limit:default:junk";
        let corrupt = |text: &str| {
            text.starts_with("ERR corrupted rate limiter value at 'rate_limit:default:junk'")
                && text.contains("RATELIMIT.RESET")
        };
        let error_text = |e: &redis::RedisError| {
            format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
        };
        let mut invalid = 0;
        for (n, g) in garbage.iter().enumerate() {
            // Text, an empty value, a bare header and every truncation of a
            // valid value are refused by INFO (and by a CHECK that would
            // record); a flipped bit or random bytes may form a valid value.
            let must_refuse = n < 6 + good.len();
            let _: () = cmd("SET")
                .arg(key)
                .arg(g)
                .arg("EX")
                .arg(100)
                .query(&mut c)
                .unwrap();
            let before = snapshot(&mut c, key);
            // INFO reads the whole value, so it refuses every invalid one.
            let info_ok = match cmd("RATELIMIT.INFO").arg("junk").query::<Value>(&mut c) {
                Ok(_) => true,
                Err(e) => {
                    assert!(corrupt(&error_text(&e)), "INFO on {g:?}: {e}");
                    invalid += 1;
                    false
                }
            };
            assert!(!(must_refuse && info_ok), "INFO accepted {g:?}");
            // A value INFO refuses is never written again, however deep in
            // it the damage is: CHECK refuses it when it would record, and
            // PEEK when it would be allowed (a denied one reads only what
            // it needs).
            for command in ["RATELIMIT.PEEK", "RATELIMIT.CHECK"] {
                let r: redis::RedisResult<Value> =
                    cmd(command).arg(&["junk", "50", "60"]).query(&mut c);
                match r {
                    Err(e) => {
                        assert!(corrupt(&error_text(&e)), "{command} on {g:?}: {e}");
                        assert!(!info_ok, "{command} refused {g:?}, which INFO accepts");
                        assert_eq!(snapshot(&mut c, key), before, "{command} on {g:?}");
                    }
                    Ok(v) if !info_ok => {
                        assert_eq!(snapshot(&mut c, key), before, "{command} wrote {g:?}");
                        assert!(!decision(v).allowed, "{command} allowed {g:?}");
                    }
                    Ok(_) => {}
                }
            }
        }
        assert!(
            invalid > garbage.len() / 2,
            "only {invalid} of {} values were invalid",
            garbage.len()
        );
        for text in [&b"hello"[..], b""] {
            let _: () = cmd("SET").arg(key).arg(text).query(&mut c).unwrap();
            let e = err_of(&mut c, cmd("RATELIMIT.CHECK").arg(&["junk", "5", "60"]));
            assert!(e.starts_with("ERR corrupted rate limiter value"), "{e}");
            let n: i64 = cmd("RATELIMIT.RESET").arg("junk").query(&mut c).unwrap();
            assert_eq!(n, 1);
            assert!(check(&mut c, &["junk", "5", "60"]).allowed);
        }
        let pong: String = cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
    });
}

#[test]
fn a_limiter_of_100_requests_stays_small() {
    // Gaps between requests (ms) and the window (s): two to five bytes per
    // request, the widest spread a 30-day window can hold last.
    let mut worst: Vec<i64> = vec![134_217_728; 18];
    worst.extend(std::iter::repeat_n(1_048_576, 81));
    let spreads: Vec<(&str, Vec<i64>, i64)> = vec![
        ("ms500", vec![500; 99], 60),
        ("min1", vec![60_000; 99], 6_001),
        ("s2000", vec![2_000_000; 99], 200_001),
        ("widest", worst, 2_592_000),
    ];
    on_each_server(|s| {
        let mut c = s.conn();
        let now = now_ms();
        for (id, gaps, window_s) in &spreads {
            let mut at = now - gaps.iter().sum::<i64>() - 1_000;
            let key = format!("rate_limit:default:{id}");
            for gap in std::iter::once(&0).chain(gaps.iter()) {
                at += gap;
                let (t, w) = (at.to_string(), (window_s * 1000).to_string());
                let _: () = cmd("RATELIMIT.RECORD")
                    .arg(&[key.as_str(), &t, "100", &w, "1"])
                    .query(&mut c)
                    .unwrap();
            }
            // The key expires when its last request leaves the window
            // (rounded up to a second), however its value was written.
            let at_ms = (at + window_s * 1000 + 999) / 1000 * 1000;
            let pexpiretime: i64 = cmd("PEXPIRETIME").arg(&key).query(&mut c).unwrap();
            assert_eq!(pexpiretime, at_ms, "{id}");
        }
        for _ in 0..100 {
            check(&mut c, &["burst", "100", "60"]);
        }
        let ids = spreads.iter().map(|(id, _, _)| *id).chain(["burst"]);
        for id in ids {
            let i = info(&mut c, &[id]);
            assert_eq!(i.count, 100, "{id}");
            let key = format!("rate_limit:default:{id}");
            let bytes: i64 = cmd("MEMORY").arg(&["USAGE", &key]).query(&mut c).unwrap();
            let len: i64 = cmd("STRLEN").arg(&key).query(&mut c).unwrap();
            assert!(bytes <= 600, "{id}: MEMORY USAGE {bytes} ({len} B value)");
            assert!(i.ttl_ms > 0, "{id}: {}", i.ttl_ms);
        }
    });
}

#[test]
fn a_value_rewritten_at_its_exact_size_keeps_its_expiry_and_lfu_counter() {
    on_each_server(|s| {
        let mut c = s.conn();
        for (name, value) in [("maxmemory-policy", "allkeys-lfu"), ("lfu-log-factor", "0")] {
            let _: () = cmd("CONFIG")
                .arg(&["SET", name, value])
                .query(&mut c)
                .unwrap();
        }
        // 150 requests 500 ms apart: two bytes each, so the value passes
        // 200 bytes and is rewritten at its exact size from then on.
        let key = "rate_limit:default:lfu";
        let first = now_ms() - 100_000;
        let record = |c: &mut Connection, at: i64| {
            let _: () = cmd("RATELIMIT.RECORD")
                .arg(&[key, &at.to_string(), "1000", "600000", "1"])
                .query(c)
                .unwrap();
        };
        for i in 0..150 {
            record(&mut c, first + i * 500);
        }
        let len: i64 = cmd("STRLEN").arg(key).query(&mut c).unwrap();
        assert!(len > 250, "{len}");
        // Every write counted as an access: the key is hot, not new (5).
        let freq: i64 = cmd("OBJECT").arg(&["FREQ", key]).query(&mut c).unwrap();
        assert!(freq > 100, "OBJECT FREQ {freq}");
        // After a rewrite the key has the state's expiry, even one an
        // operator took away (PERSIST) within the same second.
        let expected: i64 = cmd("PEXPIRETIME").arg(key).query(&mut c).unwrap();
        let _: () = cmd("PERSIST").arg(key).query(&mut c).unwrap();
        record(&mut c, first + 149 * 500);
        let len_after: i64 = cmd("STRLEN").arg(key).query(&mut c).unwrap();
        assert!(len_after > len, "the value was rewritten");
        let at: i64 = cmd("PEXPIRETIME").arg(key).query(&mut c).unwrap();
        assert_eq!(at, expected);
    });
}

#[test]
fn config_get_of_the_policies_does_not_leak() {
    on_each_server(|s| {
        let mut c = s.conn();
        let many: Vec<String> = (0..1000).map(|i| format!("action{i}:1/1")).collect();
        let text = many.join(" ");
        let _: () = cmd("CONFIG")
            .arg(&["SET", "cachekit.ratelimit-policies", &text])
            .query(&mut c)
            .unwrap();
        let get = |c: &mut Connection| {
            let v: Vec<String> = cmd("CONFIG")
                .arg(&["GET", "cachekit.ratelimit-policies"])
                .query(c)
                .unwrap();
            assert_eq!(v[1], text);
        };
        get(&mut c);
        let before = info_int(&mut c, "memory", "used_memory");
        for _ in 0..500 {
            get(&mut c);
        }
        let after = info_int(&mut c, "memory", "used_memory");
        // A copy kept per call would be 500 x 13 KB, over 6 MB.
        assert!(after - before < 1_000_000, "{before} -> {after}");
    });
}

/// WATCH sees what built-in commands make it see: a write aborts the
/// transaction, a command that changed nothing (a denied check, a RESET or
/// INVALIDATEUSER of nothing, an error) does not.
#[test]
fn watch_is_aborted_by_writes_only() {
    on_each_server(|s| {
        let mut a = s.conn();
        let mut b = s.conn();
        let exec_after = |a: &mut Connection, b: &mut Connection, key: &str, write: &redis::Cmd| {
            let _: () = cmd("WATCH").arg(key).query(a).unwrap();
            let _: Value = write.query(b).unwrap_or(Value::Nil);
            let _: () = cmd("MULTI").query(a).unwrap();
            let _: String = cmd("PING").query(a).unwrap();
            let r: Value = cmd("EXEC").query(a).unwrap();
            r != Value::Nil
        };
        check(&mut b, &["d", "1", "30"]);
        let _: () = cmd("LPUSH")
            .arg(&["rate_limit:default:w", "x"])
            .query(&mut b)
            .unwrap();
        let _: () = cmd("SET").arg(&["session:9", "{}"]).query(&mut b).unwrap();
        for (key, write, runs) in [
            (
                "rate_limit:default:d",
                cmd("RATELIMIT.CHECK").arg(&["d", "1", "30"]).clone(),
                true,
            ),
            (
                "rate_limit:default:none",
                cmd("RATELIMIT.RESET").arg("none").clone(),
                true,
            ),
            ("user:5", cmd("CACHE.INVALIDATEUSER").arg("5").clone(), true),
            (
                "rate_limit:default:w",
                cmd("RATELIMIT.CHECK").arg(&["w", "1", "30"]).clone(),
                true,
            ),
            (
                "rate_limit:default:e",
                cmd("RATELIMIT.CHECK").arg(&["e", "1", "30"]).clone(),
                false,
            ),
            (
                "rate_limit:default:d",
                cmd("RATELIMIT.RESET").arg("d").clone(),
                false,
            ),
            (
                "user:7",
                cmd("CACHE.SETUSER").arg(&["7", "{}"]).clone(),
                false,
            ),
            (
                "session:9",
                cmd("CACHE.INVALIDATEUSER").arg("9").clone(),
                false,
            ),
        ] {
            assert_eq!(exec_after(&mut a, &mut b, key, &write), runs, "{key}");
        }
    });
}

/// The key's expiry is the state's after every admitted check, even when
/// something outside the module changed it in the same second.
#[test]
fn an_admitted_check_puts_back_an_expiry_changed_from_outside() {
    on_each_server(|s| {
        let mut c = s.conn();
        let key = "rate_limit:default:ext";
        check(&mut c, &["ext", "3", "60"]);
        for outside in [
            cmd("PEXPIRE").arg(key).arg(200).clone(),
            cmd("PERSIST").arg(key).clone(),
        ] {
            let _: Value = outside.query(&mut c).unwrap();
            assert!(check(&mut c, &["ext", "100", "60"]).allowed);
            let pttl = pttl(&mut c, "ext");
            assert!((59_000..=61_000).contains(&pttl), "{pttl}");
        }
    });
}

#[test]
fn parallel_clients_never_exceed_the_limit() {
    on_each_server(|s| {
        const THREADS: usize = 16;
        const PER_THREAD: usize = 40;
        const LIMIT: u64 = 150;
        let admitted = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(50);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                let admitted = Arc::clone(&admitted);
                scope.spawn(move || {
                    let mut c = s.conn();
                    for _ in 0..PER_THREAD {
                        assert!(Instant::now() < deadline, "test ran past one window");
                        let d = check(&mut c, &["crowd", "150", "60"]);
                        assert!(d.count <= LIMIT as i64, "{d:?}");
                        if d.allowed {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), LIMIT);
        let mut c = s.conn();
        assert_eq!(info(&mut c, &["crowd"]).count, LIMIT as i64);
    });
}

/// The admitted requests' exact times, from the RATELIMIT.RECORD commands
/// in the AOF (the primary's own record of every admission).
fn recorded_times(dir: &Path, key: &str) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let aof_dir = dir.join("appendonlydir");
    let mut files: Vec<_> = std::fs::read_dir(&aof_dir)
        .expect("appendonlydir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    files.sort();
    for f in files {
        let data = std::fs::read(&f).expect("read AOF");
        for command in parse_resp_commands(&data) {
            if command.len() == 6
                && command[0].eq_ignore_ascii_case(b"RATELIMIT.RECORD")
                && command[1] == key.as_bytes()
            {
                let num = |b: &[u8]| -> i64 { std::str::from_utf8(b).unwrap().parse().unwrap() };
                out.push((num(&command[2]), num(&command[5])));
            }
        }
    }
    out
}

/// Splits a RESP command stream (`*N` then N `$len` bulks) into commands.
fn parse_resp_commands(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn line(data: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
        let start = *pos;
        let end = start + data.get(start..)?.windows(2).position(|w| w == b"\r\n")?;
        *pos = end + 2;
        Some(data[start..end].to_vec())
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let Some(header) = line(data, &mut pos) else {
            break;
        };
        let Some(n) = header.strip_prefix(b"*") else {
            break;
        };
        let n: usize = std::str::from_utf8(n).unwrap().parse().unwrap();
        let mut command = Vec::with_capacity(n);
        for _ in 0..n {
            let len_line = line(data, &mut pos).expect("bulk header");
            let len: usize = std::str::from_utf8(&len_line[1..])
                .unwrap()
                .parse()
                .unwrap();
            command.push(data[pos..pos + len].to_vec());
            pos += len + 2;
        }
        out.push(command);
    }
    out
}

#[test]
fn sliding_window_holds_under_parallel_load() {
    for flavor in Flavor::ALL {
        let s = Server::with(
            flavor,
            Options {
                server_args: ["--appendonly", "yes", "--appendfsync", "always"]
                    .iter()
                    .map(|a| a.to_string())
                    .collect(),
                ..Options::default()
            },
        );
        const LIMIT: i64 = 10;
        const WINDOW_MS: i64 = 1_000;
        let admitted = AtomicU64::new(0);
        let stop = Instant::now() + Duration::from_millis(2_600);
        std::thread::scope(|scope| {
            for t in 0..8u64 {
                let admitted = &admitted;
                let s = &s;
                scope.spawn(move || {
                    let mut c = s.conn();
                    let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                    let mut n = 0;
                    while Instant::now() < stop && n < 20_000 {
                        n += 1;
                        let d = check(&mut c, &["slide", "10", "1"]);
                        assert!(d.count <= LIMIT, "{d:?}");
                        if d.allowed {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                        std::thread::sleep(Duration::from_millis(rng.gen_range(0..15)));
                    }
                });
            }
        });
        let times = recorded_times(&s.dir, "rate_limit:default:slide");
        let total = admitted.load(Ordering::Relaxed) as usize;
        assert_eq!(times.len(), total, "one RECORD per admission");
        // The run spans more than two windows, so the window slid.
        assert!(total as i64 > 2 * LIMIT, "only {total} admitted");
        for (i, &(t, _)) in times.iter().enumerate() {
            let in_window: i64 = times
                .iter()
                .filter(|(u, _)| *u > t - WINDOW_MS && *u <= t)
                .map(|(_, cost)| cost)
                .sum();
            assert!(
                in_window <= LIMIT,
                "{in_window} admitted in the window ending at entry {i} ({t})"
            );
        }
        s.assert_log_clean();
    }
}
