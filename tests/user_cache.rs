//! The user-scoped cache commands against real servers.

mod common;

use common::{cmd, err_of, info_int, info_text, on_each_server, wait_until, Flavor, Server};
use redis::{Commands, Value};

#[test]
fn values_round_trip_at_the_python_keys() {
    on_each_server(|s| {
        let mut c = s.conn();
        let user = r#"{"id": 42, "name": "Иван", "emoji": "😀"}"#;
        let r: String = cmd("CACHE.SETUSER")
            .arg(42)
            .arg(user)
            .query(&mut c)
            .unwrap();
        assert_eq!(r, "OK");
        // Byte-identical with the key the Python service reads.
        let raw: String = c.get("user:42").unwrap();
        assert_eq!(raw, user);
        let got: String = cmd("CACHE.GETUSER").arg(42).query(&mut c).unwrap();
        assert_eq!(got, user);

        let _: () = cmd("CACHE.SETPERMISSIONS")
            .arg(42)
            .arg(r#"["read","write"]"#)
            .query(&mut c)
            .unwrap();
        let raw: String = c.get("user_permissions:42").unwrap();
        assert_eq!(raw, r#"["read","write"]"#);
        let _: () = cmd("CACHE.SETSESSION")
            .arg(777)
            .arg(r#"{"state":"menu"}"#)
            .query(&mut c)
            .unwrap();
        let raw: String = c.get("session:777").unwrap();
        assert_eq!(raw, r#"{"state":"menu"}"#);
        let got: String = cmd("CACHE.GETSESSION").arg(777).query(&mut c).unwrap();
        assert_eq!(got, r#"{"state":"menu"}"#);
        let got: String = cmd("CACHE.GETPERMISSIONS").arg(42).query(&mut c).unwrap();
        assert_eq!(got, r#"["read","write"]"#);

        // What Python stored, the module reads.
        let _: () = c.set("user:7", r#"{"from":"python"}"#).unwrap();
        let got: String = cmd("CACHE.GETUSER").arg(7).query(&mut c).unwrap();
        assert_eq!(got, r#"{"from":"python"}"#);

        let missing: Option<String> = cmd("CACHE.GETUSER").arg(404).query(&mut c).unwrap();
        assert_eq!(missing, None);
    });
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    on_each_server(|s| {
        let mut c = s.conn();
        let _: () = cmd("CACHE.SETUSER")
            .arg(42)
            .arg(r#"{"ok":1}"#)
            .query(&mut c)
            .unwrap();
        let cases: Vec<(redis::Cmd, &str)> = vec![
            (
                cmd("CACHE.SETUSER").arg(42).clone(),
                "ERR wrong number of arguments",
            ),
            (
                cmd("CACHE.GETUSER").clone(),
                "ERR wrong number of arguments",
            ),
            (
                cmd("CACHE.GETUSER").arg(42).arg(1).clone(),
                "ERR wrong number of arguments",
            ),
            (
                cmd("CACHE.SETUSER").arg(42).arg("{").clone(),
                "ERR invalid JSON",
            ),
            (
                cmd("CACHE.SETUSER").arg(42).arg("[1]").clone(),
                "ERR invalid JSON",
            ),
            (
                cmd("CACHE.SETPERMISSIONS").arg(42).arg("{}").clone(),
                "ERR invalid JSON",
            ),
            (
                cmd("CACHE.SETUSER")
                    .arg(42)
                    .arg(&b"{\"a\":\"\xff\"}"[..])
                    .clone(),
                "ERR invalid JSON",
            ),
            (
                cmd("CACHE.SETUSER")
                    .arg(42)
                    .arg("{}")
                    .arg("TTL")
                    .arg(0)
                    .clone(),
                "ERR TTL is not an integer or out of range",
            ),
            (
                cmd("CACHE.SETUSER")
                    .arg(42)
                    .arg("{}")
                    .arg("TTL")
                    .arg(-1)
                    .clone(),
                "ERR TTL is not an integer or out of range",
            ),
            (
                cmd("CACHE.SETUSER")
                    .arg(42)
                    .arg("{}")
                    .arg("TTL")
                    .arg("1.5")
                    .clone(),
                "ERR TTL is not an integer or out of range",
            ),
            (
                cmd("CACHE.SETUSER").arg(42).arg("{}").arg("TTL").clone(),
                "ERR syntax error",
            ),
            (
                cmd("CACHE.SETUSER")
                    .arg(42)
                    .arg("{}")
                    .arg("EX")
                    .arg(5)
                    .clone(),
                "ERR syntax error",
            ),
            (
                cmd("CACHE.SETUSER").arg("").arg("{}").clone(),
                "ERR user_id must not be empty",
            ),
            (cmd("CACHE.STATS").arg("NOPE").clone(), "ERR syntax error"),
        ];
        for (bad, want) in cases {
            let e = err_of(&mut c, &bad);
            assert!(
                e.starts_with(want),
                "{:?}: got {e}",
                bad.args_iter().count()
            );
        }
        let raw: String = c.get("user:42").unwrap();
        assert_eq!(raw, r#"{"ok":1}"#, "a failed command changed the value");

        // A key of another type: WRONGTYPE for reads and writes, value kept.
        let _: () = c.hset("user:9", "f", "v").unwrap();
        let e = err_of(&mut c, cmd("CACHE.GETUSER").arg(9));
        assert!(e.starts_with("WRONGTYPE"), "{e}");
        let e = err_of(&mut c, cmd("CACHE.SETUSER").arg(9).arg("{}"));
        assert!(e.starts_with("WRONGTYPE"), "{e}");
        let t: String = cmd("TYPE").arg("user:9").query(&mut c).unwrap();
        assert_eq!(t, "hash");
    });
}

#[test]
fn invalidateuser_deletes_all_four_keys_at_once() {
    on_each_server(|s| {
        let mut c = s.conn();
        let _: () = cmd("CACHE.SETUSER")
            .arg(42)
            .arg("{}")
            .query(&mut c)
            .unwrap();
        let _: () = cmd("CACHE.SETPERMISSIONS")
            .arg(42)
            .arg("[]")
            .query(&mut c)
            .unwrap();
        let _: () = cmd("CACHE.SETSESSION")
            .arg(42)
            .arg("{}")
            .query(&mut c)
            .unwrap();
        let _: () = c.set("user_with_roles:42", "{}").unwrap();
        let _: () = c.set("user:43", "{}").unwrap();
        let n: i64 = cmd("CACHE.INVALIDATEUSER").arg(42).query(&mut c).unwrap();
        assert_eq!(n, 4);
        let left: i64 = c
            .exists(&[
                "user:42",
                "user_permissions:42",
                "session:42",
                "user_with_roles:42",
            ])
            .unwrap();
        assert_eq!(left, 0);
        let other: i64 = c.exists("user:43").unwrap();
        assert_eq!(other, 1);
        let n: i64 = cmd("CACHE.INVALIDATEUSER").arg(42).query(&mut c).unwrap();
        assert_eq!(n, 0);
        let _: () = c.set("session:42", "{}").unwrap();
        let n: i64 = cmd("CACHE.INVALIDATEUSER").arg(42).query(&mut c).unwrap();
        assert_eq!(n, 1);

        // One step: a MONITOR-free check is that a WATCHing transaction sees it as one change.
        let _: () = cmd("CACHE.SETUSER")
            .arg(50)
            .arg("{}")
            .query(&mut c)
            .unwrap();
        let _: () = cmd("CACHE.SETSESSION")
            .arg(50)
            .arg("{}")
            .query(&mut c)
            .unwrap();
        let before: i64 = info_int(&mut c, "stats", "total_commands_processed");
        let n: i64 = cmd("CACHE.INVALIDATEUSER").arg(50).query(&mut c).unwrap();
        let after: i64 = info_int(&mut c, "stats", "total_commands_processed");
        assert_eq!(n, 2);
        assert_eq!(
            after - before,
            2,
            "one command (plus the INFO) did the whole invalidation"
        );
    });
}

/// Name, write, fast (O(1) work only), key spec flags, complexity prefix.
#[rustfmt::skip]
const DECLARED: &[(&str, bool, bool, &[&str], &str)] = &[
    ("cache.setuser", true, false, &["OW", "update"], "O(N)"),
    ("cache.getuser", false, true, &["RO", "access"], "O(1)"),
    ("cache.setpermissions", true, false, &["OW", "update"], "O(N)"),
    ("cache.getpermissions", false, true, &["RO", "access"], "O(1)"),
    ("cache.setsession", true, false, &["OW", "update"], "O(N)"),
    ("cache.getsession", false, true, &["RO", "access"], "O(1)"),
    ("cache.invalidateuser", true, false, &["RM", "delete"], "O(1)"),
    ("cache.setsearch", true, false, &["OW", "update"], "O(N)"),
    ("cache.getsearch", false, false, &["RO", "access"], "O(N)"),
    ("cache.setrag", true, false, &["OW", "update"], "O(N)"),
    ("cache.getrag", false, false, &["RO", "access"], "O(N)"),
    ("cache.settranslation", true, false, &["OW", "update"], "O(N)"),
    ("cache.gettranslation", false, false, &["RO", "access"], "O(N)"),
    ("cache.setuserroles", true, false, &["OW", "update"], "O(N)"),
    ("cache.getuserroles", false, true, &["RO", "access"], "O(1)"),
    ("cache.setdocuments", true, false, &["OW", "update"], "O(N)"),
    ("cache.getdocuments", false, true, &["RO", "access"], "O(1)"),
    ("cache.setembedding", true, false, &["OW", "update"], "O(N)"),
    ("cache.getembedding", false, false, &["RO", "access"], "O(N)"),
    ("ratelimit.check", true, false, &["RW", "access", "update"], "O(N)"),
    ("ratelimit.peek", false, false, &["RO", "access"], "O(N)"),
    ("ratelimit.info", false, false, &["RO", "access"], "O(N)"),
    ("ratelimit.reset", true, true, &["RM", "delete"], "O(1)"),
];

/// The declared list covers every kind's commands.
#[test]
fn every_kind_is_declared() {
    for kind in &cachekit::kinds::KINDS {
        for name in [kind.set_command, kind.get_command] {
            assert!(DECLARED.iter().any(|d| d.0 == name), "{name}");
        }
    }
}

#[test]
fn commands_declare_honest_flags_and_the_routing_argument() {
    on_each_server(|s| {
        let mut c = s.conn();
        for &(name, write, fast, key_flags, complexity) in DECLARED {
            let info: Value = cmd("COMMAND").arg("INFO").arg(name).query(&mut c).unwrap();
            let text = format!("{info:?}");
            if write {
                assert!(
                    text.contains("write") && !text.contains("readonly"),
                    "{name}: {text}"
                );
            } else {
                assert!(
                    text.contains("readonly") && !text.contains("\"write\""),
                    "{name}: {text}"
                );
            }
            assert_eq!(text.contains("\"fast\""), fast, "{name}: {text}");
            assert!(text.contains("not_key"), "{name}: {text}");
            for flag in key_flags {
                assert!(
                    text.contains(&format!("\"{flag}\"")),
                    "{name} {flag}: {text}"
                );
            }
            let docs: Value = cmd("COMMAND").arg("DOCS").arg(name).query(&mut c).unwrap();
            let docs = format!("{docs:?}");
            assert!(
                docs.contains(&format!("\"{complexity}")),
                "{name} {complexity}: {docs}"
            );
            // Arguments, for redis-cli's hints.
            assert!(docs.contains("\"arguments\""), "{name}: {docs}");
        }
        let info: Value = cmd("COMMAND")
            .arg("INFO")
            .arg("cache.setuser")
            .query(&mut c)
            .unwrap();
        assert!(format!("{info:?}").contains("denyoom"));
        for (name, words) in [
            ("cache.setuser", &["user_id", "json", "TTL", "seconds"][..]),
            (
                "ratelimit.check",
                &["identifier", "block", "window_seconds", "ACTION", "COST"][..],
            ),
            ("cache.getsearch", &["query", "user_id", "FILTERS"][..]),
            ("cache.stats", &["pure-token", "RESET"][..]),
        ] {
            let docs: Value = cmd("COMMAND").arg("DOCS").arg(name).query(&mut c).unwrap();
            let docs = format!("{docs:?}");
            for w in words {
                assert!(docs.contains(&format!("\"{w}\"")), "{name} {w}: {docs}");
            }
        }
    });
}

#[test]
fn writes_replicate_to_a_replica_with_the_same_expiry() {
    for flavor in Flavor::ALL {
        let primary = Server::start(flavor);
        let replica = Server::with(
            flavor,
            common::Options {
                server_args: vec![
                    "--replicaof".into(),
                    "127.0.0.1".into(),
                    primary.port.to_string(),
                ],
                // A different config on the replica must not change what it stores.
                module_args: vec!["user-ttl".into(), "5".into()],
                ..Default::default()
            },
        );
        let mut p = primary.conn();
        let mut r = replica.conn();
        wait_until("the replica link", || {
            info_text(&mut r, "replication").contains("master_link_status:up")
        });
        let _: () = cmd("CACHE.SETUSER")
            .arg(42)
            .arg(r#"{"a":1}"#)
            .query(&mut p)
            .unwrap();
        let _: () = cmd("CACHE.SETSESSION")
            .arg(42)
            .arg("{}")
            .arg("TTL")
            .arg(77)
            .query(&mut p)
            .unwrap();
        let _: () = cmd("WAIT").arg(1).arg(5000).query(&mut p).unwrap();
        let v: String = r.get("user:42").unwrap();
        assert_eq!(v, r#"{"a":1}"#);
        let pe: i64 = cmd("PEXPIRETIME").arg("user:42").query(&mut p).unwrap();
        let re: i64 = cmd("PEXPIRETIME").arg("user:42").query(&mut r).unwrap();
        assert_eq!(pe, re, "absolute expiry replicated");
        let got: String = cmd("CACHE.GETUSER").arg(42).query(&mut r).unwrap();
        assert_eq!(got, r#"{"a":1}"#, "reads work on a replica");
        let e = err_of(&mut r, cmd("CACHE.SETUSER").arg(1).arg("{}"));
        assert!(e.starts_with("READONLY"), "{e}");

        let n: i64 = cmd("CACHE.INVALIDATEUSER").arg(42).query(&mut p).unwrap();
        assert_eq!(n, 2);
        let _: () = cmd("WAIT").arg(1).arg(5000).query(&mut p).unwrap();
        let left: i64 = r.exists(&["user:42", "session:42"]).unwrap();
        assert_eq!(left, 0);
        primary.assert_log_clean();
        replica.assert_log_clean();
    }
}

#[test]
fn every_write_counts_as_a_change_for_snapshots() {
    on_each_server(|s| {
        let mut c = s.conn();
        let mut last = info_int(&mut c, "persistence", "rdb_changes_since_last_save");
        for write in [
            cmd("CACHE.SETUSER").arg(1).arg("{}").clone(),
            cmd("CACHE.SETPERMISSIONS").arg(1).arg("[]").clone(),
            cmd("CACHE.SETSESSION").arg(1).arg("{}").clone(),
            cmd("CACHE.INVALIDATEUSER").arg(1).clone(),
        ] {
            let _: Value = write.query(&mut c).unwrap();
            let now = info_int(&mut c, "persistence", "rdb_changes_since_last_save");
            assert!(now > last, "no change counted");
            last = now;
        }
    });
}

#[test]
fn redis_cli_sees_the_same() {
    on_each_server(|s| {
        assert_eq!(
            s.cli(&["CACHE.SETUSER", "42", r#"{"name":"Ann"}"#]).trim(),
            "OK"
        );
        assert_eq!(s.cli(&["GET", "user:42"]).trim(), r#"{"name":"Ann"}"#);
        assert_eq!(s.cli(&["CACHE.GETUSER", "42"]).trim(), r#"{"name":"Ann"}"#);
        assert_eq!(s.cli(&["CACHE.INVALIDATEUSER", "42"]).trim(), "1");
        let e = s.cli(&["CACHE.SETUSER", "42", "nope"]);
        assert!(e.contains("ERR invalid JSON"), "{e}");
    });
}
