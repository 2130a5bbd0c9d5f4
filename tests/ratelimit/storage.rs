//! The stored value: its TTL, size, encoding, dirtiness and WATCH.

use super::*;

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
