//! Rate-limit policies by action, set at load or with CONFIG SET.

use super::*;

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
