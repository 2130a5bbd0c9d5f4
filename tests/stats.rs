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
                    "recommendations"
                ]
            );
            assert_eq!(int(field(&m, "hits")), 4);
            assert_eq!(int(field(&m, "misses")), 4);
            assert_eq!(int(field(&m, "total_requests")), 8);
            assert_eq!(float(field(&m, "hit_rate")), 50.0);
            let ns = as_map(field(&m, "namespaces"));
            let ns_names: Vec<&str> = ns.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(
                ns_names,
                [
                    "user",
                    "permissions",
                    "session",
                    "search",
                    "rag",
                    "translation"
                ]
            );
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
