//! The rate limiter's state through replication, RDB and AOF: a replica and
//! a restarted server hold byte for byte what the primary held, and one
//! admitted check costs a small, fixed number of replicated bytes.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{cmd, err_of, info_field, now_ms, wait_until, Flavor, Options, Server};
use redis::{Connection, Value};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

fn allowed(c: &mut Connection, a: &[&str]) -> bool {
    let v: Value = cmd("RATELIMIT.CHECK").arg(a).query(c).expect("CHECK");
    let Value::Array(items) = v else {
        panic!("CHECK reply {v:?}")
    };
    items[1] == Value::Int(1)
}

/// Every limiter key with its value bytes and absolute expiry.
fn limiters(c: &mut Connection) -> State {
    let keys: Vec<Vec<u8>> = cmd("KEYS").arg("rate_limit:*").query(c).expect("KEYS");
    keys.into_iter()
        .map(|k| {
            let v: Vec<u8> = cmd("GET").arg(&k).query(c).expect("GET");
            let at: i64 = cmd("PEXPIRETIME").arg(&k).query(c).expect("PEXPIRETIME");
            (k, (v, at))
        })
        .collect()
}

fn repl_offset(c: &mut Connection) -> i64 {
    info_field(c, "replication", "master_repl_offset")
        .parse()
        .unwrap()
}

/// A primary and a replica in sync.
fn pair(flavor: Flavor) -> (Server, Server) {
    let primary = Server::with(
        flavor,
        Options {
            server_args: args(&["--repl-diskless-sync-delay", "0"]),
            ..Options::default()
        },
    );
    let replica = Server::with(
        flavor,
        Options {
            server_args: args(&["--replicaof", "127.0.0.1", &primary.port.to_string()]),
            ..Options::default()
        },
    );
    let mut rc = replica.conn();
    wait_until("the replica to sync", || {
        info_field(&mut rc, "replication", "master_link_status") == "up"
    });
    (primary, replica)
}

/// Waits until the replica has applied everything the primary sent.
fn sync(primary: &mut Connection) {
    let acked: i64 = cmd("WAIT").arg(1).arg(10_000).query(primary).expect("WAIT");
    assert_eq!(acked, 1, "the replica acknowledged");
}

/// A mix of traffic: explicit rules, policies, costs, denials, a 1 s window
/// whose requests leave between checks, and a reset.
fn traffic(c: &mut Connection) {
    for i in 0..5 {
        allowed(c, &["alice", "3", "60"]);
        allowed(c, &["bob", "10", "60", "COST", &(i + 1).to_string()]);
        allowed(c, &["alice", "ACTION", "search"]);
        allowed(c, &["carol", "4", "1"]);
        std::thread::sleep(Duration::from_millis(120));
    }
    allowed(c, &["dave", "2", "60"]);
    let _: i64 = cmd("RATELIMIT.RESET").arg("dave").query(c).unwrap();
    allowed(c, &["erin", "1000000", "3600", "COST", "1000"]);
    // A longer window than the stored one: the denied check stores it and
    // pushes the expiry out (a RECORD of cost 0), so the entry is not lost
    // while it counts.
    assert!(allowed(c, &["frank", "1", "1"]));
    assert!(!allowed(c, &["frank", "1", "100"]));
    let ttl: i64 = cmd("PTTL")
        .arg("rate_limit:default:frank")
        .query(c)
        .unwrap();
    assert!(ttl > 98_000, "PTTL {ttl}");
    new_commands(c);
}

/// Several rules, ACQUIRE, CHECKALL, REFUND and the Python limiter's JSON
/// list: each replicates its effect, not its clock.
fn new_commands(c: &mut Connection) {
    for _ in 0..3 {
        allowed(c, &["gina", "2", "1", "5", "60"]);
        let _: i64 = cmd("RATELIMIT.ACQUIRE")
            .arg(&["hank", "3", "60", "10", "3600"])
            .query(c)
            .unwrap();
        let _: Value = cmd("RATELIMIT.CHECKALL")
            .arg(&[
                "3", "default", "{g}1", "search", "{g}1", "upload", "{g}1", "COST", "2",
            ])
            .query(c)
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    // A shorter window after a longer one keeps the longer one's requests.
    allowed(c, &["ivy", "5", "60"]);
    allowed(c, &["ivy", "5", "1"]);
    let n: i64 = cmd("RATELIMIT.REFUND")
        .arg(&["hank", "COST", "2"])
        .query(c)
        .unwrap();
    assert_eq!(n, 2);
    let _: i64 = cmd("RATELIMIT.REFUND")
        .arg(&["{g}1", "ACTION", "upload"])
        .query(c)
        .unwrap();
    // The Python limiter's state, converted by a check and by a refund.
    let now = now_ms() / 1000;
    let list = format!("[{}, {}]", now - 1, now);
    for key in ["rate_limit:default:jack", "rate_limit:default:kate"] {
        let _: () = cmd("SETEX").arg(key).arg(60).arg(&list).query(c).unwrap();
    }
    assert!(allowed(c, &["jack", "5", "60"]));
    let n: i64 = cmd("RATELIMIT.REFUND").arg("kate").query(c).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn replica_holds_the_primary_state_byte_for_byte() {
    for flavor in Flavor::ALL {
        let (primary, replica) = pair(flavor);
        let mut pc = primary.conn();
        let mut rc = replica.conn();
        traffic(&mut pc);
        sync(&mut pc);
        let p = limiters(&mut pc);
        assert_eq!(p.len(), 14, "{:?}", p.keys());
        assert_eq!(limiters(&mut rc), p, "{}: replica state", flavor.binary());

        // The replica serves reads: PEEK and INFO, without recording.
        let want: Value = cmd("RATELIMIT.INFO").arg("alice").query(&mut pc).unwrap();
        let got: Value = cmd("RATELIMIT.INFO").arg("alice").query(&mut rc).unwrap();
        let Value::Array(want) = want else { panic!() };
        let Value::Array(got) = got else { panic!() };
        assert_eq!(got[..8], want[..8], "INFO on the replica");
        let v: Value = cmd("RATELIMIT.PEEK")
            .arg(&["alice", "3", "60"])
            .query(&mut rc)
            .unwrap();
        let Value::Array(items) = v else { panic!() };
        assert_eq!(
            (&items[1], &items[3]),
            (&Value::Int(0), &Value::Int(3)),
            "PEEK on the replica sees the full limiter"
        );
        let v: Value = cmd("RATELIMIT.PEEK")
            .arg(&["fresh", "3", "60"])
            .query(&mut rc)
            .unwrap();
        let Value::Array(items) = v else { panic!() };
        assert_eq!(items[1], Value::Int(1));
        let e = err_of(&mut rc, cmd("RATELIMIT.CHECK").arg(&["alice", "3", "60"]));
        assert!(e.starts_with("READONLY"), "CHECK on a replica: {e}");
        assert_eq!(limiters(&mut rc), p, "reads on the replica change nothing");

        // Requests leave the 1 s window on both sides alike.
        std::thread::sleep(Duration::from_millis(1_100));
        assert!(allowed(&mut pc, &["carol", "4", "1"]));
        sync(&mut pc);
        assert_eq!(limiters(&mut rc), limiters(&mut pc));

        primary.assert_log_clean();
        replica.assert_log_clean();
    }
}

#[test]
fn one_admitted_check_replicates_a_small_fixed_number_of_bytes() {
    for flavor in Flavor::ALL {
        let (primary, replica) = pair(flavor);
        let mut pc = primary.conn();
        // The first write after the sync also carries a SELECT.
        allowed(&mut pc, &["warm", "5", "60"]);
        sync(&mut pc);

        for (id, limit, cost) in [
            ("small", "100", "1"),
            ("big-limit", "1000000", "1"),
            ("big-cost", "1000000", "50000"),
        ] {
            let before = repl_offset(&mut pc);
            for _ in 0..20 {
                assert!(allowed(&mut pc, &[id, limit, "2592000", "COST", cost]));
            }
            let per_check = (repl_offset(&mut pc) - before) / 20;
            assert!(
                per_check > 0 && per_check <= 200,
                "{id}: {per_check} bytes per check"
            );
        }
        // A limiter holding many requests still replicates the same few bytes.
        let before = repl_offset(&mut pc);
        assert!(allowed(&mut pc, &["small", "100", "2592000"]));
        let one = repl_offset(&mut pc) - before;
        assert!(
            one <= 200,
            "{one} bytes for a check on a 21-request limiter"
        );

        // A denied check under another rule than the stored one stores
        // that rule: a few bytes too. Denied checks after it replicate nothing.
        let before = repl_offset(&mut pc);
        assert!(!allowed(&mut pc, &["warm", "1", "60"]));
        let rule_change = repl_offset(&mut pc) - before;
        assert!(
            rule_change > 0 && rule_change <= 200,
            "{rule_change} bytes for a rule change"
        );
        let before = repl_offset(&mut pc);
        for _ in 0..10 {
            assert!(!allowed(&mut pc, &["warm", "1", "60"]));
            let _: Value = cmd("RATELIMIT.PEEK")
                .arg(&["warm", "1", "60"])
                .query(&mut pc)
                .unwrap();
        }
        assert_eq!(repl_offset(&mut pc), before);

        sync(&mut pc);
        let mut rc = replica.conn();
        assert_eq!(limiters(&mut rc), limiters(&mut pc));
        primary.assert_log_clean();
        replica.assert_log_clean();
    }
}

#[test]
fn state_survives_an_rdb_restart() {
    for flavor in Flavor::ALL {
        let mut first = Server::start(flavor);
        let dir = first.dir.clone();
        let mut c = first.conn();
        traffic(&mut c);
        let before = limiters(&mut c);
        let _: () = cmd("SAVE").query(&mut c).unwrap();
        drop(c);
        first.stop();
        first.assert_log_clean();

        let second = Server::with(
            flavor,
            Options {
                dir: Some(dir),
                ..Options::default()
            },
        );
        let mut c = second.conn();
        assert_same_state(&before, &limiters(&mut c), flavor, "RDB restart");
        // The limiter goes on counting where it stopped.
        assert!(!allowed(&mut c, &["alice", "3", "60"]));
        assert!(allowed(&mut c, &["bob", "100", "60"]));
        second.assert_log_clean();
    }
}

#[test]
fn aof_replay_rebuilds_the_same_bytes() {
    for flavor in Flavor::ALL {
        let aof = args(&["--appendonly", "yes", "--appendfsync", "always"]);
        let mut first = Server::with(
            flavor,
            Options {
                server_args: aof.clone(),
                ..Options::default()
            },
        );
        let dir = first.dir.clone();
        let mut c = first.conn();
        traffic(&mut c);
        let before = limiters(&mut c);
        drop(c);
        first.stop();
        first.assert_log_clean();
        // The replay runs later than the original checks, with requests of
        // the 1 s window already gone by its clock: it must not matter.
        std::thread::sleep(Duration::from_millis(300));

        let second = Server::with(
            flavor,
            Options {
                dir: Some(dir.clone()),
                server_args: aof.clone(),
                ..Options::default()
            },
        );
        let mut c = second.conn();
        let after = limiters(&mut c);
        assert_same_state(&before, &after, flavor, "AOF replay");
        assert!(after.len() >= 4);
        assert!(!allowed(&mut c, &["alice", "3", "60"]));

        // Once more, after a rewrite (RDB preamble + tail).
        let _: () = cmd("BGREWRITEAOF").query(&mut c).unwrap_or(());
        wait_until("the AOF rewrite", || {
            info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"
                && info_field(&mut c, "persistence", "aof_rewrite_scheduled") == "0"
        });
        allowed(&mut c, &["bob", "100", "60"]);
        let before = limiters(&mut c);
        drop(c);
        let mut second = second;
        second.stop();
        second.assert_log_clean();
        let third = Server::with(
            flavor,
            Options {
                dir: Some(dir),
                server_args: aof,
                ..Options::default()
            },
        );
        let mut c = third.conn();
        let after = limiters(&mut c);
        assert_same_state(&before, &after, flavor, "AOF rewrite and replay");
        assert!(after.contains_key(&b"rate_limit:default:bob"[..]));
        third.assert_log_clean();
    }
}

type State = BTreeMap<Vec<u8>, (Vec<u8>, i64)>;

/// Every limiter present after the restart is byte-identical, with the same
/// expiry; one may only be missing because its expiry passed meanwhile
/// (carol's 1 s window).
fn assert_same_state(before: &State, after: &State, flavor: Flavor, what: &str) {
    for (k, v) in after {
        assert_eq!(
            before.get(k),
            Some(v),
            "{} after {what}: {}",
            flavor.binary(),
            String::from_utf8_lossy(k)
        );
    }
    for (k, (_, at)) in before {
        if !after.contains_key(k) {
            assert!(
                *at <= now_ms(),
                "{} after {what}: {} vanished before its expiry",
                flavor.binary(),
                String::from_utf8_lossy(k)
            );
        }
    }
}
