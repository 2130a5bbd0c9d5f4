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
fn ttls_come_from_configs_and_overrides() {
    on_each_server(|s| {
        let mut c = s.conn();
        let _: () = cmd("CACHE.SETUSER").arg(1).arg("{}").query(&mut c).unwrap();
        let ttl: i64 = c.ttl("user:1").unwrap();
        assert!((1799..=1800).contains(&ttl), "user ttl {ttl}");
        let _: () = cmd("CACHE.SETPERMISSIONS")
            .arg(1)
            .arg("[]")
            .query(&mut c)
            .unwrap();
        let ttl: i64 = c.ttl("user_permissions:1").unwrap();
        assert!((1799..=1800).contains(&ttl), "permissions ttl {ttl}");
        let _: () = cmd("CACHE.SETSESSION")
            .arg(1)
            .arg("{}")
            .query(&mut c)
            .unwrap();
        let ttl: i64 = c.ttl("session:1").unwrap();
        assert!((3599..=3600).contains(&ttl), "session ttl {ttl}");
        let _: () = cmd("CACHE.SETUSER")
            .arg(2)
            .arg("{}")
            .arg("ttl")
            .arg(5)
            .query(&mut c)
            .unwrap();
        let ttl: i64 = c.pttl("user:2").unwrap();
        assert!((4000..=5000).contains(&ttl), "override pttl {ttl}");

        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("cachekit.user-ttl")
            .arg(60)
            .query(&mut c)
            .unwrap();
        let _: () = cmd("CACHE.SETUSER").arg(3).arg("{}").query(&mut c).unwrap();
        let ttl: i64 = c.ttl("user:3").unwrap();
        assert!((59..=60).contains(&ttl), "after CONFIG SET {ttl}");
    });
}

#[test]
fn ttl_config_is_settable_at_load() {
    for flavor in Flavor::ALL {
        let s = Server::with_module_args(flavor, &["user-ttl", "900", "session-ttl", "120"]);
        let mut c = s.conn();
        let v: Vec<String> = cmd("CONFIG")
            .arg("GET")
            .arg("cachekit.user-ttl")
            .query(&mut c)
            .unwrap();
        assert_eq!(v, vec!["cachekit.user-ttl", "900"]);
        let _: () = cmd("CACHE.SETSESSION")
            .arg(1)
            .arg("{}")
            .query(&mut c)
            .unwrap();
        let ttl: i64 = c.ttl("session:1").unwrap();
        assert!((119..=120).contains(&ttl), "{ttl}");
    }
}

#[test]
fn bad_load_arguments_refuse_to_load() {
    for flavor in Flavor::ALL {
        for args in [
            vec!["user-ttl", "0"],
            vec!["user-ttl", "abc"],
            vec!["nope", "1"],
            vec!["key-style"],
            vec!["key-style", "fancy"],
            // Integers as Redis's string2ll reads them.
            vec!["user-ttl", "+5"],
            vec!["user-ttl", "007"],
            vec!["user-ttl", " 5"],
            vec!["ratelimit-policies", "a:+5/60"],
            vec!["ratelimit-policies", "a:05/060"],
            // The reason is logged as text, never as a format string.
            vec!["user-ttl", "%s%s%s%s%s%n"],
            vec!["ratelimit-policies", "%s%s%s%s%n\t:1/1"],
            // A bad value is not hidden by a good one given after it.
            vec!["user-ttl", "abc", "user-ttl", "900"],
            vec!["key-style", "bogus", "KEY-STYLE", "plain"],
        ] {
            let opts = common::Options {
                module_args: args.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            match Server::try_start(flavor, &opts) {
                Ok(_) => panic!("{flavor:?} loaded with {args:?}"),
                Err(log) => assert!(
                    log.contains("cachekit: not loaded"),
                    "{flavor:?} {args:?}: {log}"
                ),
            }
        }
    }
}

/// The value of the module config `cachekit.<name>`.
fn config_get(c: &mut redis::Connection, name: &str) -> String {
    let name = format!("cachekit.{name}");
    let v: Vec<String> = cmd("CONFIG").arg("GET").arg(&name).query(c).unwrap();
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(v[0], name);
    v[1].clone()
}

#[test]
fn load_argument_names_and_enum_values_ignore_case() {
    for flavor in Flavor::ALL {
        for args in [
            ["key-style", "TAGGED"],
            ["KEY-STYLE", "Tagged"],
            ["key-style", "tagged"],
        ] {
            let s = Server::with_module_args(flavor, &args);
            let mut c = s.conn();
            assert_eq!(
                config_get(&mut c, "key-style"),
                "tagged",
                "{flavor:?} {args:?}"
            );
            let _: () = cmd("CACHE.SETUSER").arg(5).arg("{}").query(&mut c).unwrap();
            let n: i64 = c.exists("user:{5}").unwrap();
            assert_eq!(n, 1, "{flavor:?} {args:?}: tagged style writes user:{{5}}");
            s.assert_log_clean();
        }
        let s = Server::with_module_args(flavor, &["User-TTL", "900", "KEY-STYLE", "PLAIN"]);
        let mut c = s.conn();
        assert_eq!(config_get(&mut c, "user-ttl"), "900", "{flavor:?}");
        assert_eq!(config_get(&mut c, "key-style"), "plain", "{flavor:?}");
    }
}

#[test]
fn integers_must_be_written_as_redis_reads_them() {
    on_each_server(|s| {
        let mut c = s.conn();
        for ttl in ["+5", "007", "05", "-0", " 5", "5 ", "1e3", "0x10", ""] {
            let e = err_of(
                &mut c,
                cmd("CACHE.SETUSER").arg(1).arg("{}").arg("TTL").arg(ttl),
            );
            assert!(
                e.starts_with("ERR TTL is not an integer or out of range (allowed: 1 to "),
                "TTL {ttl:?}: {e}"
            );
        }
        let n: i64 = c.exists("user:1").unwrap();
        assert_eq!(n, 0, "a refused SETUSER wrote nothing");
        let _: () = cmd("CACHE.SETUSER")
            .arg(1)
            .arg("{}")
            .arg("TTL")
            .arg("5")
            .query(&mut c)
            .unwrap();

        for (limit, window) in [("05", "60"), ("+5", "60"), ("5", "060"), ("5", "+60")] {
            let e = err_of(
                &mut c,
                cmd("RATELIMIT.CHECK").arg("strict").arg(limit).arg(window),
            );
            assert!(e.starts_with("ERR "), "{limit}/{window}: {e}");
            assert!(e.contains("not an integer or out of range"), "{e}");
        }
        let n: i64 = c.exists("rate_limit:default:strict").unwrap();
        assert_eq!(n, 0, "a refused check recorded nothing");

        let before: Vec<String> = cmd("CONFIG")
            .arg("GET")
            .arg("cachekit.ratelimit-policies")
            .query(&mut c)
            .unwrap();
        for bad in ["a:+5/60", "a:5/+60", "a:05/60", "a:5/060"] {
            let e = err_of(
                &mut c,
                cmd("CONFIG")
                    .arg("SET")
                    .arg("cachekit.ratelimit-policies")
                    .arg(bad),
            );
            assert!(e.starts_with("ERR"), "{bad}: {e}");
            assert!(e.contains("must be an integer from"), "{bad}: {e}");
        }
        let after: Vec<String> = cmd("CONFIG")
            .arg("GET")
            .arg("cachekit.ratelimit-policies")
            .query(&mut c)
            .unwrap();
        assert_eq!(before, after);
    });
}

#[test]
fn configs_reject_bad_values_and_keep_the_old_one() {
    on_each_server(|s| {
        let mut c = s.conn();
        for (name, bad) in [
            ("cachekit.user-ttl", "0"),
            ("cachekit.session-ttl", "-5"),
            ("cachekit.search-ttl", "abc"),
            ("cachekit.rag-ttl", "999999999999"),
            ("cachekit.translation-ttl", ""),
            ("cachekit.key-style", "fancy"),
            ("cachekit.ratelimit-policies", "search:0/60"),
            ("cachekit.ratelimit-policies", "search"),
        ] {
            let before: Vec<String> = cmd("CONFIG").arg("GET").arg(name).query(&mut c).unwrap();
            let e = err_of(&mut c, cmd("CONFIG").arg("SET").arg(name).arg(bad));
            assert!(e.starts_with("ERR"), "{name}={bad}: {e}");
            let after: Vec<String> = cmd("CONFIG").arg("GET").arg(name).query(&mut c).unwrap();
            assert_eq!(before, after);
        }
        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("cachekit.key-style")
            .arg("tagged")
            .query(&mut c)
            .unwrap();
        let _: () = cmd("CACHE.SETUSER").arg(5).arg("{}").query(&mut c).unwrap();
        let n: i64 = c.exists("user:{5}").unwrap();
        assert_eq!(n, 1, "tagged style writes user:{{5}}");
        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("cachekit.ratelimit-policies")
            .arg("default:10/1 login:3/300")
            .query(&mut c)
            .unwrap();
        let v: Vec<String> = cmd("CONFIG")
            .arg("GET")
            .arg("cachekit.ratelimit-policies")
            .query(&mut c)
            .unwrap();
        assert_eq!(v[1], "default:10/1 login:3/300");
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
    ("ratelimit.check", true, false, &["RW", "access", "update"], "O(N)"),
    ("ratelimit.peek", false, false, &["RO", "access"], "O(N)"),
    ("ratelimit.info", false, false, &["RO", "access"], "O(N)"),
    ("ratelimit.reset", true, true, &["RM", "delete"], "O(1)"),
];

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
