//! Keyspace notifications and client-side caching.

use super::*;

/// The next `__keyevent@0__` message as (event, key); RawConn bounds the read.
fn next_event(sub: &mut RawConn) -> (String, String) {
    let msg = sub
        .read()
        .expect("a keyspace event before the read timeout");
    match msg.flat().as_slice() {
        [kind, _, channel, key] if kind == "pmessage" => {
            let event = channel.strip_prefix("__keyevent@0__:").expect("keyevent");
            (event.to_string(), key.clone())
        }
        _ => panic!("expected a pmessage, got {msg:?}"),
    }
}

#[test]
fn writes_send_the_keyspace_events_of_the_built_in_commands() {
    for flavor in Flavor::ALL {
        let s = Server::start(flavor);
        let mut c = RawConn::connect(s.port);
        let mut sub = RawConn::connect(s.port);
        assert_eq!(
            call(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
            ok()
        );
        assert_eq!(
            call(&mut sub, &["PSUBSCRIBE", "__keyevent@0__:*"]).flat(),
            ["psubscribe", "__keyevent@0__:*", "1"]
        );

        assert_eq!(call(&mut c, &["CACHE.SETUSER", "11", "{}"]), ok());
        assert_eq!(call(&mut c, &["CACHE.SETSESSION", "11", "{}"]), ok());
        assert_eq!(call(&mut c, &["CACHE.INVALIDATEUSER", "11"]), Resp::Int(2));
        let allowed = |r: Resp| {
            let f = r.flat();
            let at = f.iter().position(|x| x == "allowed").expect("allowed");
            f[at + 1].clone()
        };
        assert_eq!(
            allowed(call(&mut c, &["RATELIMIT.CHECK", "nt", "1", "60"])),
            "1"
        );
        assert_eq!(
            allowed(call(&mut c, &["RATELIMIT.CHECK", "nt", "1", "60"])),
            "0"
        );
        assert_eq!(call(&mut c, &["RATELIMIT.RESET", "nt"]), Resp::Int(1));
        let at = common::now_ms().to_string();
        let record = [
            "RATELIMIT.RECORD",
            "rate_limit:default:rec",
            &at,
            "5",
            "60000",
            "1",
        ];
        assert_eq!(call(&mut c, &record), ok());
        // Writes that change nothing send nothing.
        assert_eq!(call(&mut c, &["RATELIMIT.RESET", "nt"]), Resp::Int(0));
        assert_eq!(call(&mut c, &["CACHE.INVALIDATEUSER", "11"]), Resp::Int(0));
        assert!(!call(&mut c, &["RATELIMIT.PEEK", "rec", "5", "60"]).is_error());
        assert!(!call(&mut c, &["RATELIMIT.INFO", "rec"]).is_error());
        // A built-in write closes the sequence: nothing came in between.
        assert_eq!(call(&mut c, &["SET", "end", "x"]), ok());

        let expected = [
            ("set", "user:11"),
            ("expire", "user:11"),
            ("set", "session:11"),
            ("expire", "session:11"),
            ("del", "user:11"),
            ("del", "session:11"),
            ("ratelimit", "rate_limit:default:nt"),
            ("expire", "rate_limit:default:nt"),
            ("del", "rate_limit:default:nt"),
            ("ratelimit", "rate_limit:default:rec"),
            ("expire", "rate_limit:default:rec"),
            ("set", "end"),
        ];
        let got: Vec<(String, String)> = expected.iter().map(|_| next_event(&mut sub)).collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(e, k)| (e.to_string(), k.to_string()))
            .collect();
        assert_eq!(got, expected, "{flavor:?}");
        assert!(sub.nothing_pending(), "{flavor:?}: an extra event");
        s.assert_log_clean();
    }
}

#[test]
fn client_side_caching_is_invalidated_by_the_module_writes() {
    for flavor in Flavor::ALL {
        let s = Server::start(flavor);
        let mut c = RawConn::connect(s.port);
        // A reader that cached user:42 after a GET, and one that follows
        // every user:* key by prefix.
        let mut reader = RawConn::connect(s.port);
        let mut bcast = RawConn::connect(s.port);
        for (conn, tracking) in [
            (&mut reader, &["CLIENT", "TRACKING", "on"][..]),
            (
                &mut bcast,
                &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:"],
            ),
        ] {
            assert!(!call(conn, &["HELLO", "3"]).is_error());
            assert_eq!(call(conn, tracking), ok());
        }
        assert_eq!(call(&mut reader, &["GET", "user:42"]), Resp::Nil);
        assert_eq!(call(&mut c, &["CACHE.SETUSER", "42", "{}"]), ok());
        for conn in [&mut reader, &mut bcast] {
            let push = conn.read().expect("invalidation");
            assert!(matches!(push, Resp::Push(_)), "{flavor:?}: {push:?}");
            assert_eq!(push.flat(), ["invalidate", "user:42"], "{flavor:?}");
        }
        assert_eq!(call(&mut c, &["CACHE.INVALIDATEUSER", "42"]), Resp::Int(1));
        let push = bcast.read().expect("invalidation");
        assert_eq!(push.flat(), ["invalidate", "user:42"], "{flavor:?}");
        s.assert_log_clean();
    }
}
