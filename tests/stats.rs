//! CACHE.STATS and the INFO section count exactly.

mod common;

use common::{cmd, on_each_server};
use redis::Value;

fn as_map(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| (redis::from_redis_value::<String>(k).unwrap(), v.clone()))
            .collect(),
        Value::Array(items) => items
            .chunks(2)
            .map(|p| {
                (
                    redis::from_redis_value::<String>(&p[0]).unwrap(),
                    p[1].clone(),
                )
            })
            .collect(),
        other => panic!("not a map: {other:?}"),
    }
}

fn field<'a>(m: &'a [(String, Value)], name: &str) -> &'a Value {
    &m.iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .1
}

fn int(v: &Value) -> i64 {
    redis::from_redis_value(v).unwrap()
}

fn float(v: &Value) -> f64 {
    match v {
        Value::Double(d) => *d,
        other => redis::from_redis_value::<String>(other)
            .unwrap()
            .parse()
            .unwrap(),
    }
}

#[test]
fn counts_a_known_sequence_exactly() {
    on_each_server(|s| {
        for resp3 in [false, true] {
            let mut c = if resp3 { s.conn_resp3() } else { s.conn() };
            let _: () = cmd("CACHE.STATS").arg("RESET").query(&mut c).unwrap();
            let _: () = cmd("CACHE.SETUSER").arg(1).arg("{}").query(&mut c).unwrap();
            let _: () = cmd("CACHE.SETSESSION")
                .arg(1)
                .arg("{}")
                .query(&mut c)
                .unwrap();
            // user: 3 hits, 1 miss; session: 1 hit, 2 misses; permissions: 0 hits, 1 miss.
            for id in [1, 1, 1, 2] {
                let _: Value = cmd("CACHE.GETUSER").arg(id).query(&mut c).unwrap();
            }
            for id in [1, 2, 3] {
                let _: Value = cmd("CACHE.GETSESSION").arg(id).query(&mut c).unwrap();
            }
            let _: Value = cmd("CACHE.GETPERMISSIONS").arg(1).query(&mut c).unwrap();
            // Errors count nothing.
            let _ = cmd("CACHE.GETUSER").query::<Value>(&mut c);

            let v: Value = cmd("CACHE.STATS").query(&mut c).unwrap();
            if resp3 {
                assert!(matches!(v, Value::Map(_)), "RESP3 map expected: {v:?}");
            } else {
                assert!(
                    matches!(v, Value::Array(_)),
                    "RESP2 flat array expected: {v:?}"
                );
            }
            let m = as_map(&v);
            let names: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(
                names,
                [
                    "hits",
                    "misses",
                    "total_requests",
                    "hit_rate",
                    "namespaces",
                    "ratelimit",
                    "used_memory_human",
                    "used_memory_peak_human",
                    "connected_clients",
                    "keyspace_hit_rate",
                    "purges",
                    "recommendations"
                ]
            );
            assert_eq!(int(field(&m, "hits")), 4);
            assert_eq!(int(field(&m, "misses")), 4);
            assert_eq!(int(field(&m, "total_requests")), 8);
            assert_eq!(float(field(&m, "hit_rate")), 50.0);
            let ns = as_map(field(&m, "namespaces"));
            let ns_names: Vec<&str> = ns.iter().map(|(k, _)| k.as_str()).collect();
            let kinds: Vec<&str> = cachekit::kinds::KINDS.iter().map(|k| k.namespace).collect();
            assert_eq!(ns_names, kinds);
            assert_eq!(ns_names[6..], ["user_roles", "documents", "embedding"]);
            let user = as_map(field(&ns, "user"));
            assert_eq!(
                (int(field(&user, "hits")), int(field(&user, "misses"))),
                (3, 1)
            );
            assert_eq!(float(field(&user, "hit_rate")), 75.0);
            let session = as_map(field(&ns, "session"));
            assert_eq!(
                (int(field(&session, "hits")), int(field(&session, "misses"))),
                (1, 2)
            );
            assert_eq!(float(field(&session, "hit_rate")), 33.33);
            let perms = as_map(field(&ns, "permissions"));
            assert_eq!(
                (int(field(&perms, "hits")), int(field(&perms, "misses"))),
                (0, 1)
            );
            let rl = as_map(field(&m, "ratelimit"));
            assert_eq!(int(field(&rl, "allowed")), 0);
            assert_eq!(int(field(&rl, "denied")), 0);
            let mem: String = redis::from_redis_value(field(&m, "used_memory_human")).unwrap();
            let info: String = cmd("INFO").arg("memory").query(&mut c).unwrap();
            assert!(info.contains("used_memory_human:"), "{info}");
            assert!(
                mem.ends_with('K') || mem.ends_with('M') || mem.ends_with('B'),
                "{mem}"
            );

            let info: String = cmd("INFO").arg("cachekit").query(&mut c).unwrap();
            for line in [
                "# cachekit_stats",
                "cachekit_hits:4",
                "cachekit_misses:4",
                "cachekit_user_hits:3",
                "cachekit_user_misses:1",
                "cachekit_session_hits:1",
                "cachekit_session_misses:2",
                "cachekit_permissions_misses:1",
                "cachekit_ratelimit_allowed:0",
                "cachekit_ratelimit_denied:0",
            ] {
                assert!(
                    info.lines().any(|l| l.trim() == line),
                    "missing {line} in\n{info}"
                );
            }
            let modules: String = cmd("INFO").arg("modules").query(&mut c).unwrap();
            assert!(modules.contains("cachekit_hits:4"), "{modules}");

            let _: () = cmd("CACHE.STATS").arg("reset").query(&mut c).unwrap();
            let m = as_map(&cmd("CACHE.STATS").query(&mut c).unwrap());
            assert_eq!(int(field(&m, "total_requests")), 0);
            assert_eq!(float(field(&m, "hit_rate")), 0.0);
        }
    });
}

#[test]
fn recommends_on_a_low_hit_rate() {
    on_each_server(|s| {
        let mut c = s.conn();
        for id in 0..150 {
            let _: Value = cmd("CACHE.GETUSER").arg(id).query(&mut c).unwrap();
        }
        let m = as_map(&cmd("CACHE.STATS").query(&mut c).unwrap());
        let recs: Vec<String> = redis::from_redis_value(field(&m, "recommendations")).unwrap();
        assert!(
            recs.iter()
                .any(|r| r.contains("hit rate 0% over 150 requests")),
            "{recs:?}"
        );

        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg("1000000")
            .query(&mut c)
            .unwrap();
        let m = as_map(&cmd("CACHE.STATS").query(&mut c).unwrap());
        let recs: Vec<String> = redis::from_redis_value(field(&m, "recommendations")).unwrap();
        assert!(recs.iter().any(|r| r.contains("of maxmemory")), "{recs:?}");
        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg("0")
            .query(&mut c)
            .unwrap();
    });
}

#[test]
fn reset_takes_the_permission_of_config_resetstat() {
    on_each_server(|s| {
        let mut admin = s.conn();
        let _: () = cmd("CACHE.GETUSER").arg("1").query(&mut admin).unwrap();
        for (user, rules) in [
            ("reader", &["+cache.stats", "+eval_ro"][..]),
            ("resetter", &["+cache.stats", "+config|resetstat"][..]),
        ] {
            let _: () = cmd("ACL")
                .arg(&["SETUSER", user, "on", ">pw"])
                .arg(rules)
                .query(&mut admin)
                .unwrap();
        }
        let misses = |c: &mut redis::Connection| {
            let v: Value = cmd("CACHE.STATS").query(c).unwrap();
            int(field(&as_map(&v), "misses"))
        };
        let login = |user: &str| {
            let mut c = s.conn();
            let _: () = cmd("AUTH").arg(user).arg("pw").query(&mut c).unwrap();
            c
        };

        // Reading is what CACHE.STATS grants; zeroing takes more.
        let mut reader = login("reader");
        assert_eq!(misses(&mut reader), 1);
        let e = common::err_of(&mut reader, cmd("CACHE.STATS").arg("RESET"));
        assert!(
            e.starts_with("NOPERM CACHE.STATS RESET needs the permission to run CONFIG RESETSTAT"),
            "{e}"
        );
        assert_eq!(misses(&mut admin), 1, "a refused RESET zeroed the counters");
        let log: Value = cmd("ACL").arg(&["LOG", "1"]).query(&mut admin).unwrap();
        let log = format!("{log:?}");
        assert!(
            log.contains("cache.stats|reset") && log.contains("reader"),
            "{log}"
        );
        // A read-only script runs as its caller, with the caller's rights.
        let e = common::err_of(
            &mut reader,
            cmd("EVAL_RO")
                .arg("return redis.call('CACHE.STATS', 'RESET')")
                .arg(0),
        );
        assert!(e.contains("CACHE.STATS RESET needs"), "{e}");

        let mut resetter = login("resetter");
        let ok: String = cmd("CACHE.STATS")
            .arg("RESET")
            .query(&mut resetter)
            .unwrap();
        assert_eq!(ok, "OK");
        assert_eq!(misses(&mut admin), 0);
    });
}

#[test]
fn reset_works_where_config_is_renamed() {
    for flavor in common::Flavor::ALL {
        let s = common::Server::with(
            flavor,
            common::Options {
                server_args: vec![
                    "--rename-command".into(),
                    "CONFIG".into(),
                    "MYCONFIG".into(),
                ],
                ..Default::default()
            },
        );
        let mut c = s.conn();
        let _: () = cmd("CACHE.GETUSER").arg("1").query(&mut c).unwrap();
        // No command answers to CONFIG RESETSTAT: the permission to run
        // CACHE.STATS is all there is to check.
        let ok: String = cmd("CACHE.STATS").arg("RESET").query(&mut c).unwrap();
        assert_eq!(ok, "OK", "{flavor:?}");
        let v: Value = cmd("CACHE.STATS").query(&mut c).unwrap();
        assert_eq!(int(field(&as_map(&v), "misses")), 0, "{flavor:?}");
        let log: Value = cmd("ACL").arg(&["LOG"]).query(&mut c).unwrap();
        assert!(!format!("{log:?}").contains("cache.stats"), "{log:?}");
    }
}

/// The server's own figures in CACHE.STATS agree with INFO, and the
/// connected-clients check of the seed's monitor fires above 100 clients.
#[test]
fn server_figures_match_info() {
    on_each_server(|s| {
        let mut c = s.conn();
        let _: () = cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
        for key in ["k", "k", "k", "nope"] {
            let _: Value = cmd("GET").arg(key).query(&mut c).unwrap();
        }
        let v: Value = cmd("CACHE.STATS").query(&mut c).unwrap();
        let m = as_map(&v);
        let hits = common::info_int(&mut c, "stats", "keyspace_hits");
        let misses = common::info_int(&mut c, "stats", "keyspace_misses");
        let expected = (hits as f64 * 10000.0 / (hits + misses) as f64).round() / 100.0;
        assert_eq!(float(field(&m, "keyspace_hit_rate")), expected);
        assert_eq!(
            int(field(&m, "connected_clients")),
            common::info_int(&mut c, "clients", "connected_clients")
        );
        let peak: String = redis::from_redis_value(field(&m, "used_memory_peak_human")).unwrap();
        assert!(peak.ends_with('K') || peak.ends_with('M'), "{peak}");
        let purges = as_map(field(&m, "purges"));
        assert_eq!(int(field(&purges, "runs")), 0);
        assert_eq!(int(field(&purges, "last_run")), 0);
        assert_eq!(common::info_int(&mut c, "cachekit", "cachekit_purges"), 0);

        // More than 100 clients: the seed's connection-pooling advice. The
        // command stays cheap with many clients.
        let extra: Vec<redis::Connection> = (0..101).map(|_| s.conn()).collect();
        let start = std::time::Instant::now();
        for _ in 0..100 {
            let _: Value = cmd("CACHE.STATS").query(&mut c).unwrap();
        }
        let per_call = start.elapsed() / 100;
        eprintln!("CACHE.STATS with 102 clients: {per_call:?} a call (round trip included)");
        assert!(
            per_call < std::time::Duration::from_millis(5),
            "{per_call:?}"
        );
        let v: Value = cmd("CACHE.STATS").query(&mut c).unwrap();
        let m = as_map(&v);
        let recs: Vec<String> = redis::from_redis_value(field(&m, "recommendations")).unwrap();
        assert!(
            recs.iter().any(|r| r.contains("check connection pooling")),
            "{recs:?}"
        );
        drop(extra);
    });
}

/// The background cleanup under a real maxmemory: with a 1 s interval and
/// memory above the threshold it runs MEMORY PURGE and counts it; with the
/// threshold at 0 it stops, without a restart.
#[test]
fn background_cleanup_purges_above_the_threshold() {
    on_each_server(|s| {
        let mut c = s.conn();
        for i in 0..2000 {
            let _: () = cmd("CACHE.SETUSER")
                .arg(i)
                .arg(format!("{{\"pad\":\"{}\"}}", "x".repeat(200)))
                .query(&mut c)
                .unwrap();
        }
        let used = common::info_int(&mut c, "memory", "used_memory");
        // maxmemory a little above what is used: above 50% of it, below 100%.
        let max = used * 3 / 2;
        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(max)
            .query(&mut c)
            .unwrap();
        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("cachekit.purge-threshold")
            .arg(50)
            .query(&mut c)
            .unwrap();
        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("cachekit.purge-interval")
            .arg(1)
            .query(&mut c)
            .unwrap();
        common::wait_until("a background purge", || {
            common::info_int(&mut c, "cachekit", "cachekit_purges") >= 1
        });
        let v: Value = cmd("CACHE.STATS").query(&mut c).unwrap();
        let m = as_map(&v);
        let purges = as_map(field(&m, "purges"));
        assert!(int(field(&purges, "runs")) >= 1);
        let last = int(field(&purges, "last_run"));
        assert!((common::now_ms() / 1000 - last).abs() <= 5, "{last}");

        // Threshold 0 turns it off at once.
        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("cachekit.purge-threshold")
            .arg(0)
            .query(&mut c)
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1200));
        let before = common::info_int(&mut c, "cachekit", "cachekit_purges");
        std::thread::sleep(std::time::Duration::from_millis(2500));
        assert_eq!(
            common::info_int(&mut c, "cachekit", "cachekit_purges"),
            before
        );
        // No maxmemory: nothing happens either.
        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("cachekit.purge-threshold")
            .arg(1)
            .query(&mut c)
            .unwrap();
        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(0)
            .query(&mut c)
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2500));
        assert_eq!(
            common::info_int(&mut c, "cachekit", "cachekit_purges"),
            before
        );
        s.assert_log_clean();
    });
}
