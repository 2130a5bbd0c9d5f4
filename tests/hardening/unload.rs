//! MODULE UNLOAD and loading again.

use super::*;

fn threads(s: &Server) -> usize {
    let pid = s.pid().expect("running");
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn module_listed(c: &mut RawConn) -> bool {
    call(c, &["MODULE", "LIST"])
        .flat()
        .iter()
        .any(|f| f == "cachekit")
}

#[test]
fn module_unload_is_clean_and_the_module_loads_again() {
    let module = common::module_path();
    let module = module.to_str().unwrap();
    for flavor in Flavor::ALL {
        let s = Server::with(
            flavor,
            Options {
                load_module: false,
                server_args: vec!["--enable-module-command".into(), "yes".into()],
                ..Options::default()
            },
        );
        let mut c = RawConn::connect(s.port);
        let threads_before = threads(&s);
        assert_eq!(
            call(&mut c, &["MODULE", "LOAD", module, "user-ttl", "900"]),
            ok()
        );
        assert_eq!(threads(&s), threads_before, "the module started a thread");
        assert_eq!(call(&mut c, &["CACHE.SETUSER", "1", r#"{"a":1}"#]), ok());
        assert!(!call(&mut c, &["RATELIMIT.CHECK", "1"]).is_error());
        assert_eq!(call(&mut c, &["CACHE.GETUSER", "1"]), bulk(r#"{"a":1}"#));
        assert_eq!(
            call(&mut c, &["CONFIG", "SET", "cachekit.session-ttl", "77"]),
            ok()
        );
        let state = call(&mut c, &["GET", "rate_limit:default:1"]);

        assert_eq!(call(&mut c, &["MODULE", "UNLOAD", "cachekit"]), ok());
        assert!(!module_listed(&mut c));
        expect_error(
            &call(&mut c, &["CACHE.GETUSER", "1"]),
            "ERR unknown command",
        );
        assert_eq!(
            call(&mut c, &["CONFIG", "GET", "cachekit.*"]),
            Resp::Array(vec![]),
            "configs are gone with the module"
        );
        assert_eq!(
            call(&mut c, &["GET", "user:1"]),
            bulk(r#"{"a":1}"#),
            "data stays"
        );
        assert_eq!(threads(&s), threads_before);
        let used_after_first = info_field(&mut c, "memory", "used_memory")
            .parse::<i64>()
            .unwrap();

        // Load again with other arguments: fresh configs and counters, same data.
        assert_eq!(
            call(&mut c, &["MODULE", "LOAD", module, "user-ttl", "60"]),
            ok()
        );
        assert!(module_listed(&mut c));
        assert_eq!(
            call(&mut c, &["CONFIG", "GET", "cachekit.user-ttl"]),
            Resp::Array(vec![bulk("cachekit.user-ttl"), bulk("60")])
        );
        assert_eq!(
            call(&mut c, &["CONFIG", "GET", "cachekit.session-ttl"]),
            Resp::Array(vec![bulk("cachekit.session-ttl"), bulk("3600")])
        );
        let stats = call(&mut c, &["CACHE.STATS"]).flat();
        assert_eq!(
            stats[..2],
            ["hits", "0"],
            "counters start from zero after a reload: {stats:?}"
        );
        assert_eq!(call(&mut c, &["CACHE.GETUSER", "1"]), bulk(r#"{"a":1}"#));
        assert_eq!(call(&mut c, &["GET", "rate_limit:default:1"]), state);
        let info = call(&mut c, &["RATELIMIT.INFO", "1"]);
        assert!(matches!(info, Resp::Map(_) | Resp::Array(_)), "{info:?}");

        // Repeated cycles leak nothing measurable and leave no thread behind.
        for _ in 0..20 {
            assert_eq!(call(&mut c, &["MODULE", "UNLOAD", "cachekit"]), ok());
            assert_eq!(call(&mut c, &["MODULE", "LOAD", module]), ok());
            assert!(!call(&mut c, &["RATELIMIT.CHECK", "1"]).is_error());
        }
        assert_eq!(call(&mut c, &["MODULE", "UNLOAD", "cachekit"]), ok());
        assert_eq!(threads(&s), threads_before);
        let used = info_field(&mut c, "memory", "used_memory")
            .parse::<i64>()
            .unwrap();
        eprintln!(
            "{flavor:?}: used_memory after 1 unload {used_after_first}, after 21: {used} ({} per cycle)",
            (used - used_after_first) / 20
        );
        assert!(
            used - used_after_first < 20 * 4096,
            "{flavor:?}: unload/load cycles leak: {used_after_first} -> {used}"
        );
        // Unloading what is not loaded is refused with Redis's own reason.
        expect_error(&call(&mut c, &["MODULE", "UNLOAD", "cachekit"]), "ERR");
        assert_eq!(call(&mut c, &["PING"]), Resp::Simple(b"PONG".to_vec()));
        s.assert_log_clean();
    }
}

/// A transaction that queued module commands keeps pointers into the
/// library: `EXEC` after an unload would crash the server. The module
/// refuses its unload while any client is inside MULTI, says why in the
/// log, and unloads once the transaction ended.
#[test]
fn module_unload_is_refused_while_a_client_is_inside_multi() {
    let module = common::module_path();
    let module = module.to_str().unwrap();
    for flavor in Flavor::ALL {
        let s = Server::with(
            flavor,
            Options {
                load_module: false,
                server_args: vec!["--enable-module-command".into(), "yes".into()],
                ..Options::default()
            },
        );
        let mut a = RawConn::connect(s.port);
        let mut b = RawConn::connect(s.port);
        assert_eq!(call(&mut b, &["MODULE", "LOAD", module]), ok());

        assert_eq!(call(&mut a, &["MULTI"]), ok());
        let queued = Resp::Simple(b"QUEUED".to_vec());
        assert_eq!(call(&mut a, &["RATELIMIT.CHECK", "u", "5", "60"]), queued);
        assert_eq!(call(&mut a, &["CACHE.SETUSER", "1", "{}"]), queued);

        expect_error(&call(&mut b, &["MODULE", "UNLOAD", "cachekit"]), "ERR");
        assert!(module_listed(&mut b), "{flavor:?}: the module stays loaded");
        wait_until("the refusal is logged", || {
            s.log()
                .contains("MODULE UNLOAD refused: 1 client(s) inside MULTI")
        });

        let Resp::Array(results) = call(&mut a, &["EXEC"]) else {
            panic!("{flavor:?}: EXEC did not reply an array");
        };
        assert_eq!(results.len(), 2);
        assert_eq!(results[1], ok());
        assert_eq!(call(&mut b, &["GET", "user:1"]), bulk("{}"));

        // A transaction that is only open (nothing queued yet) also blocks:
        // it could queue a module command before EXEC.
        assert_eq!(call(&mut a, &["MULTI"]), ok());
        expect_error(&call(&mut b, &["MODULE", "UNLOAD", "cachekit"]), "ERR");
        assert_eq!(call(&mut a, &["DISCARD"]), ok());

        // The background cleanup running every second (1% of 100 MB is
        // less than what a server uses)...
        for (name, value) in [
            ("maxmemory", "100mb"),
            ("cachekit.purge-threshold", "1"),
            ("cachekit.purge-interval", "1"),
        ] {
            assert_eq!(call(&mut b, &["CONFIG", "SET", name, value]), ok());
        }
        wait_until("a background purge", || {
            info_field(&mut b, "cachekit", "cachekit_purges") != "0"
        });
        // ...no transaction open: the unload goes through, and the cleanup's
        // listener goes with it: the server keeps running its cron, well
        // past the next interval, without calling into the module.
        assert_eq!(call(&mut b, &["MODULE", "UNLOAD", "cachekit"]), ok());
        assert!(!module_listed(&mut b));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!call(&mut b, &["INFO", "cachekit"])
            .flat()
            .iter()
            .any(|f| f.contains("cachekit_purges")));
        assert_eq!(call(&mut a, &["PING"]), Resp::Simple(b"PONG".to_vec()));
        expect_error(
            &call(&mut a, &["CACHE.GETUSER", "1"]),
            "ERR unknown command",
        );
        assert_eq!(call(&mut b, &["MODULE", "LOAD", module]), ok());
        assert_eq!(call(&mut a, &["CACHE.GETUSER", "1"]), bulk("{}"));
        drop(a);
        drop(b);
        s.assert_log_clean();
    }
}
