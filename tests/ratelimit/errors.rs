//! Bad input, other types and corrupted values.

use super::*;

/// Each bad command must fail with `prefix` and leave the limiter as it was.
#[test]
fn bad_input_is_refused_and_changes_nothing() {
    on_each_server(|s| {
        let mut c = s.conn();
        let key = "rate_limit:default:bad";
        check(&mut c, &["bad", "5", "60", "COST", "2"]);
        let before = snapshot(&mut c, key);
        let cases: &[(&str, &[&str], &str)] = &[
            ("RATELIMIT.CHECK", &[], "ERR wrong number of arguments"),
            ("RATELIMIT.PEEK", &[], "ERR wrong number of arguments"),
            ("RATELIMIT.INFO", &[], "ERR wrong number of arguments"),
            ("RATELIMIT.RESET", &[], "ERR wrong number of arguments"),
            (
                "RATELIMIT.CHECK",
                &["bad", "abc", "60"],
                "ERR limit is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "1.5", "60"],
                "ERR limit is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "0", "60"],
                "ERR limit is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "-3", "60"],
                "ERR limit is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "1000001", "60"],
                "ERR limit is not an integer or out of range (allowed: 1 to 1000000)",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "99999999999999999999", "60"],
                "ERR limit is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "", "60"],
                "ERR limit is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "0"],
                "ERR window_seconds is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "x"],
                "ERR window_seconds is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "2592001"],
                "ERR window_seconds is not an integer or out of range (allowed: 1 to 2592000)",
            ),
            ("RATELIMIT.CHECK", &["bad", "5"], "ERR syntax error"),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "COST", "0"],
                "ERR COST is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "COST", "-1"],
                "ERR COST is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "COST", "two"],
                "ERR COST is not an integer or out of range",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "COST", "1000001"],
                "ERR COST is not an integer or out of range (allowed: 1 to 1000000)",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "COST"],
                "ERR syntax error: COST needs a value; allowed options are [<limit> <window_seconds> ...] [ACTION <action>] [COST <n>]",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "ACTION"],
                "ERR syntax error: ACTION needs a value",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "ACTION", "a", "COST", "2", "action", "b"],
                "ERR syntax error: action is given twice",
            ),
            (
                "RATELIMIT.PEEK",
                &["bad", "5", "60", "COST", "2", "COST", "1"],
                "ERR syntax error: COST is given twice",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5"],
                "ERR syntax error: <limit> needs <window_seconds> after it",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "FOO"],
                "ERR syntax error near 'FOO'",
            ),
            (
                "RATELIMIT.INFO",
                &["bad", "ACTION"],
                "ERR syntax error: ACTION needs a value; allowed options are [ACTION <action>]",
            ),
            (
                "RATELIMIT.RESET",
                &["bad", "ACTION", "a", "ACTION", "b"],
                "ERR syntax error: ACTION is given twice",
            ),
            (
                "RATELIMIT.INFO",
                &["bad", "ACTION", "a", "extra"],
                "ERR syntax error near 'extra'",
            ),
            (
                "RATELIMIT.INFO",
                &["bad", "NOPE", "a"],
                "ERR syntax error near 'NOPE'",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "FOO", "1"],
                "ERR syntax error near 'FOO'",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "ACTION", "nope"],
                "ERR no rate limit policy for action 'nope'",
            ),
            (
                "RATELIMIT.CHECK",
                &["bad", "5", "60", "ACTION", ""],
                "ERR action must be",
            ),
            (
                "RATELIMIT.CHECK",
                &["", "5", "60"],
                "ERR identifier must not be empty",
            ),
            (
                "RATELIMIT.PEEK",
                &["bad", "5", "0"],
                "ERR window_seconds is not an integer or out of range",
            ),
            (
                "RATELIMIT.PEEK",
                &["bad", "5", "60", "COST", "0"],
                "ERR COST is not an integer or out of range",
            ),
            ("RATELIMIT.INFO", &["bad", "ACTION"], "ERR syntax error"),
            ("RATELIMIT.INFO", &["bad", "FOO", "x"], "ERR syntax error"),
            ("RATELIMIT.RESET", &["bad", "FOO", "x"], "ERR syntax error"),
            ("RATELIMIT.RESET", &["bad", "ACTION"], "ERR syntax error"),
            (
                "RATELIMIT.RECORD",
                &[key, "x", "5", "60000", "1"],
                "ERR at_ms is not an integer or out of range",
            ),
            (
                "RATELIMIT.RECORD",
                &[key, "1", "5", "999", "1"],
                "ERR window_ms is not an integer or out of range",
            ),
            (
                "RATELIMIT.RECORD",
                &[key, "1", "5", "60000"],
                "ERR wrong number of arguments",
            ),
        ];
        for (command, args, prefix) in cases {
            let e = err_of(&mut c, cmd(command).arg(*args));
            assert!(
                e.starts_with(prefix),
                "{command} {args:?}: got {e:?}, want {prefix:?}"
            );
            assert_eq!(
                snapshot(&mut c, key),
                before,
                "{command} {args:?} changed the limiter"
            );
        }
        let i = info(&mut c, &["bad"]);
        assert_eq!((i.count, i.limit), (2, 5));
    });
}

#[test]
fn other_types_and_corrupted_values_give_errors() {
    on_each_server(|s| {
        let mut c = s.conn();
        let key = "rate_limit:default:other";
        let _: i64 = cmd("RPUSH").arg(&[key, "a", "b"]).query(&mut c).unwrap();
        let before = snapshot(&mut c, key);
        for (command, args) in [
            ("RATELIMIT.CHECK", vec!["other", "5", "60"]),
            ("RATELIMIT.PEEK", vec!["other", "5", "60"]),
            ("RATELIMIT.INFO", vec!["other"]),
            ("RATELIMIT.RESET", vec!["other"]),
            ("RATELIMIT.RECORD", vec![key, "1", "5", "60000", "1"]),
        ] {
            let e = err_of(&mut c, cmd(command).arg(&args));
            assert!(e.starts_with("WRONGTYPE"), "{command}: {e}");
            assert_eq!(snapshot(&mut c, key), before, "{command} changed a list");
        }

        // Garbage written with SET: a clear error, nothing changed, and
        // RESET is the way out.
        let mut garbage: Vec<Vec<u8>> = vec![
            b"hello".to_vec(),
            b"".to_vec(),
            b"100".to_vec(),
            vec![0xC1],
            vec![0xC1, 0x05],
            vec![0xC1, 0x05, 0x90, 0x4E, 0x02, 0x00, 0xFF],
        ];
        // A valid value of several entries with every possible truncation
        // and one flipped byte.
        check(&mut c, &["model", "50", "60", "COST", "3"]);
        for _ in 0..4 {
            check(&mut c, &["model", "50", "60"]);
        }
        let good = get_bytes(&mut c, "rate_limit:default:model").unwrap();
        for n in 0..good.len() {
            garbage.push(good[..n].to_vec());
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..60 {
            let mut v = good.clone();
            let i = rng.gen_range(0..v.len());
            v[i] ^= 1 << rng.gen_range(0..8);
            garbage.push(v);
        }
        for _ in 0..60 {
            let len = rng.gen_range(1..40);
            let mut v: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            v[0] = 0xC1;
            garbage.push(v);
        }
        let key = "rate_limit:default:junk";
        let corrupt = |text: &str| {
            text.starts_with("ERR corrupted rate limiter value at 'rate_limit:default:junk'")
                && text.contains("RATELIMIT.RESET")
        };
        let error_text = |e: &redis::RedisError| {
            format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
        };
        let mut invalid = 0;
        for (n, g) in garbage.iter().enumerate() {
            // Text, an empty value, a bare header and every truncation of a
            // valid value are refused by INFO (and by a CHECK that would
            // record); a flipped bit or random bytes may form a valid value.
            let must_refuse = n < 6 + good.len();
            let _: () = cmd("SET")
                .arg(key)
                .arg(g)
                .arg("EX")
                .arg(100)
                .query(&mut c)
                .unwrap();
            let before = snapshot(&mut c, key);
            // INFO reads the whole value, so it refuses every invalid one.
            let info_ok = match cmd("RATELIMIT.INFO").arg("junk").query::<Value>(&mut c) {
                Ok(_) => true,
                Err(e) => {
                    assert!(corrupt(&error_text(&e)), "INFO on {g:?}: {e}");
                    invalid += 1;
                    false
                }
            };
            assert!(!(must_refuse && info_ok), "INFO accepted {g:?}");
            // A value INFO refuses is never written again, however deep in
            // it the damage is: CHECK refuses it when it would record, and
            // PEEK when it would be allowed (a denied one reads only what
            // it needs).
            for command in ["RATELIMIT.PEEK", "RATELIMIT.CHECK"] {
                let r: redis::RedisResult<Value> =
                    cmd(command).arg(&["junk", "50", "60"]).query(&mut c);
                match r {
                    Err(e) => {
                        assert!(corrupt(&error_text(&e)), "{command} on {g:?}: {e}");
                        assert!(!info_ok, "{command} refused {g:?}, which INFO accepts");
                        assert_eq!(snapshot(&mut c, key), before, "{command} on {g:?}");
                    }
                    Ok(v) if !info_ok => {
                        assert_eq!(snapshot(&mut c, key), before, "{command} wrote {g:?}");
                        assert!(!decision(v).allowed, "{command} allowed {g:?}");
                    }
                    Ok(_) => {}
                }
            }
        }
        assert!(
            invalid > garbage.len() / 2,
            "only {invalid} of {} values were invalid",
            garbage.len()
        );
        for text in [&b"hello"[..], b""] {
            let _: () = cmd("SET").arg(key).arg(text).query(&mut c).unwrap();
            let e = err_of(&mut c, cmd("RATELIMIT.CHECK").arg(&["junk", "5", "60"]));
            assert!(e.starts_with("ERR corrupted rate limiter value"), "{e}");
            let n: i64 = cmd("RATELIMIT.RESET").arg("junk").query(&mut c).unwrap();
            assert_eq!(n, 1);
            assert!(check(&mut c, &["junk", "5", "60"]).allowed);
        }
        let pong: String = cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
    });
}
