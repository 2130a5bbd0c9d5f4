//! Several rules, CHECKALL, REFUND, ACQUIRE and the Python limiter's state.

use super::*;

fn acquire(c: &mut Connection, args: &[&str]) -> i64 {
    cmd("RATELIMIT.ACQUIRE")
        .arg(args)
        .query(c)
        .expect("ACQUIRE")
}

struct All {
    allowed: bool,
    retry_after_ms: i64,
    blocking: i64,
    remaining: Vec<i64>,
}

fn checkall(c: &mut Connection, args: &[&str]) -> All {
    let v: Value = cmd("RATELIMIT.CHECKALL")
        .arg(args)
        .query(c)
        .expect("CHECKALL");
    let p = pairs(v);
    let names: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["allowed", "retry_after_ms", "blocking", "remaining"]
    );
    let int = |v: &Value| -> i64 { redis::from_redis_value(v).expect("integer") };
    All {
        allowed: int(&p[0].1) == 1,
        retry_after_ms: int(&p[1].1),
        blocking: int(&p[2].1),
        remaining: redis::from_redis_value(&p[3].1).expect("remaining"),
    }
}

#[test]
fn the_issue_example_admits_no_more_than_the_limit() {
    on_each_server(|s| {
        let mut c = s.conn();
        for _ in 0..5 {
            assert!(check(&mut c, &["demo", "5", "60"]).allowed);
        }
        sleep_ms(1_100);
        assert!(check(&mut c, &["demo", "5", "1"]).allowed);
        let more = (0..10)
            .filter(|_| check(&mut c, &["demo", "5", "60"]).allowed)
            .count();
        assert_eq!(more, 0, "admitted past 5 per 60 s");
        // The key lives for the 60 s window.
        assert!(pttl(&mut c, "demo") > 55_000);
    });
}

#[test]
fn several_windows_and_acquire() {
    on_each_server(|s| {
        let mut c = s.conn();
        assert_eq!(acquire(&mut c, &["m1", "2", "1", "3", "60"]), 0);
        let d = check(&mut c, &["m1", "2", "1", "3", "60"]);
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining), (2, 0));
        let wait = acquire(&mut c, &["m1", "2", "1", "3", "60"]);
        assert!((1..=1_000).contains(&wait), "{wait}");
        sleep_ms(wait);
        assert_eq!(acquire(&mut c, &["m1", "2", "1", "3", "60"]), 0);
        let d = peek(&mut c, &["m1", "2", "1", "3", "60"]);
        assert!(!d.allowed);
        assert_eq!(d.limit, 3);
        assert!(d.retry_after_ms > 57_000);
        assert_eq!(acquire(&mut c, &["m1", "2", "1", "COST", "3"]), -1);
        let v: Value = cmd("RATELIMIT.INFO").arg("m1").query(&mut c).unwrap();
        let p = pairs(v);
        let rules: Vec<(i64, i64)> = redis::from_redis_value(&p[5].1).unwrap();
        assert_eq!(rules, [(2, 1_000), (3, 60_000)]);
        // A policy with two rules.
        s.cli(&[
            "CONFIG",
            "SET",
            "cachekit.ratelimit-policies",
            "search:2/1,3/60",
        ]);
        assert!(check(&mut c, &["m2", "ACTION", "search"]).allowed);
        assert!(check(&mut c, &["m2", "ACTION", "search"]).allowed);
        assert!(!check(&mut c, &["m2", "ACTION", "search"]).allowed);
        // Bad input changes nothing.
        for bad in [
            &["m1", "2"][..],
            &[
                "m1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1",
                "1", "1", "1",
            ],
            &["m1", "ACTION", "a:b"],
        ] {
            let before = snapshot(&mut c, "rate_limit:default:m1");
            let e = err_of(&mut c, cmd("RATELIMIT.CHECK").arg(bad));
            assert!(e.starts_with("ERR"), "{e}");
            assert_eq!(snapshot(&mut c, "rate_limit:default:m1"), before);
        }
        let e = err_of(
            &mut c,
            cmd("CONFIG").arg(&["SET", "cachekit.ratelimit-policies", "a:b:5/60"]),
        );
        assert!(e.contains("':'"), "{e}");
    });
}

#[test]
fn checkall_is_all_or_nothing() {
    on_each_server(|s| {
        let mut c = s.conn();
        s.cli(&[
            "CONFIG",
            "SET",
            "cachekit.ratelimit-policies",
            "tg_chat:1/1 tg_group:20/60 tg_global:30/1",
        ]);
        let args = [
            "3",
            "tg_chat",
            "12345",
            "tg_group",
            "-100123",
            "tg_global",
            "bot",
        ];
        let a = checkall(&mut c, &args);
        assert!(a.allowed);
        assert_eq!((a.retry_after_ms, a.blocking), (0, -1));
        assert_eq!(a.remaining, [0, 19, 29]);
        let before = snapshot(&mut c, "rate_limit:tg_group:-100123");
        let a = checkall(&mut c, &args);
        assert!(!a.allowed);
        assert_eq!(a.blocking, 0);
        assert!((1..=1_000).contains(&a.retry_after_ms));
        assert_eq!(a.remaining, [0, 19, 29]);
        assert_eq!(snapshot(&mut c, "rate_limit:tg_group:-100123"), before);
        // Errors change nothing.
        for bad in [
            &["2", "tg_chat", "1"][..],
            &["1", "tg_chat", "1", "tg_chat", "2"],
            &["17", "tg_chat", "1"],
            &["2", "tg_chat", "9", "tg_chat", "9"],
            &["1", "nope", "9"],
            &["1", "tg_chat", "9", "COST", "0"],
            &["1", "tg_chat", "9", "BOGUS", "1"],
        ] {
            let e = err_of(&mut c, cmd("RATELIMIT.CHECKALL").arg(bad));
            assert!(e.starts_with("ERR"), "{bad:?}: {e}");
            assert_eq!(snapshot(&mut c, "rate_limit:tg_group:-100123"), before);
        }
        let exists: i64 = cmd("EXISTS")
            .arg("rate_limit:tg_chat:9")
            .query(&mut c)
            .unwrap();
        assert_eq!(exists, 0);
        let a = checkall(&mut c, &["1", "tg_chat", "x", "COST", "2"]);
        assert_eq!((a.allowed, a.retry_after_ms, a.blocking), (false, -1, 0));
    });
}

#[test]
fn checkall_from_parallel_clients_never_admits_partially() {
    on_each_server(|s| {
        s.cli(&[
            "CONFIG",
            "SET",
            "cachekit.ratelimit-policies",
            "p0:7/60 p1:5/60 p2:9/60 p3:6/60",
        ]);
        const THREADS: usize = 8;
        let deadline = Instant::now() + Duration::from_secs(40);
        let admitted: Vec<Vec<usize>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    scope.spawn(move || {
                        let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
                        let mut c = s.conn();
                        let mut mine = Vec::new();
                        for _ in 0..30 {
                            assert!(Instant::now() < deadline);
                            // An overlapping set of 1 to 4 limiters.
                            let mut set: Vec<usize> =
                                (0..4).filter(|_| rng.gen_bool(0.5)).collect();
                            if set.is_empty() {
                                set.push(t % 4);
                            }
                            let mut args = vec![set.len().to_string()];
                            for i in &set {
                                args.push(format!("p{i}"));
                                args.push("shared".into());
                            }
                            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                            if checkall(&mut c, &refs).allowed {
                                mine.extend(set);
                            }
                        }
                        mine
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut c = s.conn();
        for (i, limit) in [7, 5, 9, 6].into_iter().enumerate() {
            let recorded = admitted.iter().flatten().filter(|&&x| x == i).count() as i64;
            let held = info(&mut c, &["shared", "ACTION", &format!("p{i}")]).count;
            // Every admission recorded in every limiter of its set, and
            // none above its limit.
            assert_eq!(held, recorded, "p{i}");
            assert!(held <= limit, "p{i}: {held} > {limit}");
        }
    });
}

#[test]
fn refund_takes_back_the_newest() {
    on_each_server(|s| {
        let mut c = s.conn();
        assert!(check(&mut c, &["rf", "3", "60", "COST", "3"]).allowed);
        let n: i64 = cmd("RATELIMIT.REFUND")
            .arg(&["rf", "COST", "2"])
            .query(&mut c)
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(info(&mut c, &["rf"]).count, 1);
        let n: i64 = cmd("RATELIMIT.REFUND")
            .arg(&["rf", "COST", "9"])
            .query(&mut c)
            .unwrap();
        assert_eq!(n, 1);
        let n: i64 = cmd("RATELIMIT.REFUND").arg(&["rf"]).query(&mut c).unwrap();
        assert_eq!(n, 0);
        let e = err_of(&mut c, cmd("RATELIMIT.REFUND").arg(&["rf", "COST", "0"]));
        assert!(e.starts_with("ERR"), "{e}");
    });
}

#[test]
fn the_python_limiters_json_list_is_taken_over() {
    on_each_server(|s| {
        let mut c = s.conn();
        let now = now_ms() / 1000;
        let list = format!("[{}, {}, {}]", now - 2, now - 1, now);
        let _: () = cmd("SETEX")
            .arg(&["rate_limit:search:old", "60", &list])
            .query(&mut c)
            .unwrap();
        let d = peek(&mut c, &["old", "5", "60", "ACTION", "search"]);
        assert_eq!(d.count, 4);
        assert_eq!(info(&mut c, &["old", "ACTION", "search"]).count, 3);
        // A denied check leaves it as it is; the first write converts it.
        assert!(!check(&mut c, &["old", "5", "60", "ACTION", "search", "COST", "3"]).allowed);
        assert_eq!(
            get_bytes(&mut c, "rate_limit:search:old"),
            Some(list.clone().into_bytes())
        );
        assert!(check(&mut c, &["old", "5", "60", "ACTION", "search"]).allowed);
        assert!(check(&mut c, &["old", "5", "60", "ACTION", "search"]).allowed);
        assert!(!check(&mut c, &["old", "5", "60", "ACTION", "search"]).allowed);
        assert_ne!(get_bytes(&mut c, "rate_limit:search:old").unwrap()[0], b'[');
        for bad in ["[1.5]", "[-1]", "[\"x\"]", "[1,", "[1] x"] {
            let _: () = cmd("SET")
                .arg(&["rate_limit:default:bad", bad])
                .query(&mut c)
                .unwrap();
            let e = err_of(&mut c, cmd("RATELIMIT.CHECK").arg(&["bad", "5", "60"]));
            assert!(
                e.starts_with("ERR corrupted rate limiter value"),
                "{bad}: {e}"
            );
            assert_eq!(
                get_bytes(&mut c, "rate_limit:default:bad"),
                Some(bad.as_bytes().to_vec())
            );
        }
    });
}

#[test]
fn a_two_window_limiter_of_200_requests_stays_under_1000_bytes() {
    on_each_server(|s| {
        let mut c = s.conn();
        let key = "rate_limit:default:mem2";
        // 200 requests spread over the last hour, as RATELIMIT.RECORD
        // replays them (20 per minute at most).
        let start = now_ms() - 3_500_000;
        for i in 0..200i64 {
            let at = (start + i * 17_000).to_string();
            let _: () = cmd("RATELIMIT.RECORD")
                .arg(&[key, &at, "20", "60000", "1", "200", "3600000"])
                .query(&mut c)
                .unwrap();
        }
        let v: Value = cmd("RATELIMIT.INFO").arg("mem2").query(&mut c).unwrap();
        let p = pairs(v);
        let stamps: Vec<i64> = redis::from_redis_value(&p[3].1).unwrap();
        assert_eq!(stamps.len(), 200);
        let usage: i64 = cmd("MEMORY").arg(&["USAGE", key]).query(&mut c).unwrap();
        assert!(usage <= 1_000, "MEMORY USAGE {usage}");
        println!(
            "{}: 200 requests under 20/60,200/3600: {usage} B",
            s.flavor.binary()
        );
    });
}
