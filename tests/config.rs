//! The module configs against real servers: TTLs, key style and policies
//! given at load or with CONFIG SET, and how their values are read.

mod common;

use common::{cmd, err_of, on_each_server, Flavor, Server};
use redis::Commands;

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
