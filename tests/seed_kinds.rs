//! Users with roles, popular documents and embeddings (the rest of the
//! seed's caches) against real servers.

mod common;

use common::{cmd, err_of, info_int, on_each_server};
use redis::{Commands, Value};

fn md5_hex(text: &str) -> String {
    cachekit::keys::md5_hex(&[text.as_bytes()])
}

fn fp32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn values_round_trip_at_the_seed_keys() {
    on_each_server(|s| {
        let mut c = s.conn();
        // DatabaseOptimizer.get_user_with_roles: user_with_roles:<id>, 30 minutes.
        let user = r#"{"id": 42, "roles": [{"name": "admin"}]}"#;
        let _: () = cmd("CACHE.SETUSERROLES")
            .arg(42)
            .arg(user)
            .query(&mut c)
            .unwrap();
        let raw: String = c.get("user_with_roles:42").unwrap();
        assert_eq!(raw, user);
        let ttl: i64 = c.ttl("user_with_roles:42").unwrap();
        assert!((1790..=1800).contains(&ttl), "{ttl}");
        let got: String = cmd("CACHE.GETUSERROLES").arg(42).query(&mut c).unwrap();
        assert_eq!(got, user);
        // What the seed's Python wrote, the module reads.
        let _: () = c
            .set("user_with_roles:7", r#"{"id":7,"roles":[]}"#)
            .unwrap();
        let got: String = cmd("CACHE.GETUSERROLES").arg(7).query(&mut c).unwrap();
        assert_eq!(got, r#"{"id":7,"roles":[]}"#);

        // get_popular_documents: popular_documents:<limit>:<category or 'all'>.
        let docs = r#"[{"id": 1, "title": "Отпуск"}]"#;
        let _: () = cmd("CACHE.SETDOCUMENTS")
            .arg(10)
            .arg("all")
            .arg(docs)
            .query(&mut c)
            .unwrap();
        let raw: String = c.get("popular_documents:10:all").unwrap();
        assert_eq!(raw, docs);
        let ttl: i64 = c.ttl("popular_documents:10:all").unwrap();
        assert!((7190..=7200).contains(&ttl), "{ttl}");
        let _: () = c.set("popular_documents:5:hr", "[]").unwrap();
        let got: String = cmd("CACHE.GETDOCUMENTS")
            .arg(5)
            .arg("hr")
            .query(&mut c)
            .unwrap();
        assert_eq!(got, "[]");
        let none: Option<String> = cmd("CACHE.GETDOCUMENTS")
            .arg(5)
            .arg("all")
            .query(&mut c)
            .unwrap();
        assert_eq!(none, None);

        // Embeddings: embedding:<md5(text)>:<model>, packed float32.
        let values = [0.1f32, -2.5, 3.0e-8, 1.0e30, 0.0];
        let _: () = cmd("CACHE.SETEMBEDDING")
            .arg("как оформить отпуск")
            .arg("text-embedding-3-small")
            .arg("[0.1, -2.5, 3e-8, 1e30, 0]")
            .query(&mut c)
            .unwrap();
        let key = format!(
            "embedding:{}:text-embedding-3-small",
            md5_hex("как оформить отпуск")
        );
        let raw: Vec<u8> = c.get(&key).unwrap();
        assert_eq!(raw, fp32(&values));
        let ttl: i64 = c.ttl(&key).unwrap();
        assert!((604_790..=604_800).contains(&ttl), "{ttl}");
        let got: Vec<u8> = cmd("CACHE.GETEMBEDDING")
            .arg("как оформить отпуск")
            .arg("text-embedding-3-small")
            .query(&mut c)
            .unwrap();
        assert_eq!(got, fp32(&values));
        let json: String = cmd("CACHE.GETEMBEDDING")
            .arg("как оформить отпуск")
            .arg("text-embedding-3-small")
            .arg("FORMAT")
            .arg("json")
            .query(&mut c)
            .unwrap();
        assert_eq!(json, "[0.1, -2.5, 3e-8, 1e30, 0.0]");
        let back: Vec<f64> = serde_json::from_str(&json).unwrap();
        let back: Vec<f32> = back.iter().map(|&v| v as f32).collect();
        assert_eq!(fp32(&back), fp32(&values));
        // FP32 in, JSON out; TTL override.
        let _: () = cmd("CACHE.SETEMBEDDING")
            .arg("q")
            .arg("m")
            .arg(fp32(&[1.5, f32::MIN_POSITIVE]))
            .arg("FORMAT")
            .arg("FP32")
            .arg("TTL")
            .arg(60)
            .query(&mut c)
            .unwrap();
        let json: String = cmd("CACHE.GETEMBEDDING")
            .arg("q")
            .arg("m")
            .arg("FORMAT")
            .arg("JSON")
            .query(&mut c)
            .unwrap();
        assert_eq!(json, "[1.5, 1.1754944e-38]");
        let ttl: i64 = c.ttl(format!("embedding:{}:m", md5_hex("q"))).unwrap();
        assert!((50..=60).contains(&ttl), "{ttl}");
        let none: Option<Vec<u8>> = cmd("CACHE.GETEMBEDDING")
            .arg("q")
            .arg("other")
            .query(&mut c)
            .unwrap();
        assert_eq!(none, None);

        // CACHE.KEY names the same keys.
        for (args, key) in [
            (
                vec!["user_with_roles", "42"],
                "user_with_roles:42".to_string(),
            ),
            (
                vec!["documents", "10", "all"],
                "popular_documents:10:all".to_string(),
            ),
            (
                vec!["embedding", "q", "m"],
                format!("embedding:{}:m", md5_hex("q")),
            ),
        ] {
            let got: String = cmd("CACHE.KEY")
                .arg(&args)
                .query(&mut c)
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(got, key, "{args:?}");
        }
        // INVALIDATEUSER deletes the user with roles too.
        let n: i64 = cmd("CACHE.INVALIDATEUSER").arg(42).query(&mut c).unwrap();
        assert_eq!(n, 1);
        assert!(!c.exists::<_, bool>("user_with_roles:42").unwrap());

        // Namespaces in CACHE.STATS and INFO.
        assert_eq!(info_int(&mut c, "cachekit", "cachekit_user_roles_hits"), 2);
        assert_eq!(info_int(&mut c, "cachekit", "cachekit_documents_hits"), 1);
        assert_eq!(info_int(&mut c, "cachekit", "cachekit_documents_misses"), 1);
        assert_eq!(info_int(&mut c, "cachekit", "cachekit_embedding_hits"), 3);
        assert_eq!(info_int(&mut c, "cachekit", "cachekit_embedding_misses"), 1);
        s.assert_log_clean();
    });
}

#[test]
fn ttl_configs_apply_without_a_restart() {
    on_each_server(|s| {
        let mut c = s.conn();
        for (config, default) in [
            ("document-ttl", "7200"),
            ("embedding-ttl", "604800"),
            ("purge-threshold", "80"),
            ("purge-interval", "3600"),
        ] {
            let got: Vec<String> = cmd("CONFIG")
                .arg("GET")
                .arg(format!("cachekit.{config}"))
                .query(&mut c)
                .unwrap();
            assert_eq!(got[1], default, "{config}");
        }
        for (config, bad) in [
            ("document-ttl", "0"),
            ("embedding-ttl", "x"),
            ("purge-threshold", "101"),
            ("purge-threshold", "-1"),
            ("purge-interval", "0"),
            ("purge-interval", "86401"),
        ] {
            let e = err_of(
                &mut c,
                cmd("CONFIG")
                    .arg("SET")
                    .arg(format!("cachekit.{config}"))
                    .arg(bad),
            );
            assert!(e.starts_with("ERR"), "{config} {bad}: {e}");
        }
        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("cachekit.document-ttl")
            .arg(100)
            .query(&mut c)
            .unwrap();
        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("cachekit.embedding-ttl")
            .arg(200)
            .query(&mut c)
            .unwrap();
        let _: () = cmd("CACHE.SETDOCUMENTS")
            .arg(3)
            .arg("x")
            .arg("[]")
            .query(&mut c)
            .unwrap();
        let _: () = cmd("CACHE.SETEMBEDDING")
            .arg("t")
            .arg("m")
            .arg("[1]")
            .query(&mut c)
            .unwrap();
        let ttl: i64 = c.ttl("popular_documents:3:x").unwrap();
        assert!((90..=100).contains(&ttl), "{ttl}");
        let ttl: i64 = c.ttl(format!("embedding:{}:m", md5_hex("t"))).unwrap();
        assert!((190..=200).contains(&ttl), "{ttl}");
    });
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    on_each_server(|s| {
        let mut c = s.conn();
        let _: () = cmd("CACHE.SETDOCUMENTS")
            .arg(5)
            .arg("all")
            .arg("[1]")
            .query(&mut c)
            .unwrap();
        let _: () = cmd("CACHE.SETEMBEDDING")
            .arg("t")
            .arg("m")
            .arg("[1]")
            .query(&mut c)
            .unwrap();
        let _: () = cmd("CACHE.SETUSERROLES")
            .arg(1)
            .arg("{}")
            .query(&mut c)
            .unwrap();
        let before: Vec<(String, Vec<u8>)> = snapshot(&mut c);
        let nan = fp32(&[f32::NAN]);
        let inf = fp32(&[1.0, f32::INFINITY]);
        let too_many = vec![0u8; 65_537 * 4];
        let too_many_json = format!("[{}]", vec!["0"; 65_537].join(","));
        let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
            (
                args(&["CACHE.SETDOCUMENTS", "0", "all", "[]"]),
                "ERR limit is not an integer",
            ),
            (
                args(&["CACHE.SETDOCUMENTS", "-3", "all", "[]"]),
                "ERR limit is not an integer",
            ),
            (
                args(&["CACHE.SETDOCUMENTS", "x", "all", "[]"]),
                "ERR limit is not an integer",
            ),
            (
                args(&["CACHE.GETDOCUMENTS", "1.5", "all"]),
                "ERR limit is not an integer",
            ),
            (
                args(&["CACHE.SETDOCUMENTS", "5", "all", "{}"]),
                "ERR invalid JSON",
            ),
            (
                args(&["CACHE.SETDOCUMENTS", "5", "all", "[1"]),
                "ERR invalid JSON",
            ),
            (
                args(&["CACHE.SETDOCUMENTS", "5", "", "[]"]),
                "ERR category must not be empty",
            ),
            (args(&["CACHE.SETUSERROLES", "1", "[]"]), "ERR invalid JSON"),
            (
                args(&["CACHE.SETUSERROLES", "1", "{}", "TTL", "0"]),
                "ERR TTL",
            ),
            (
                args(&["CACHE.SETEMBEDDING", "t", "m", "[NaN]"]),
                "ERR invalid JSON",
            ),
            (
                args(&["CACHE.SETEMBEDDING", "t", "m", "[1e39]"]),
                "ERR vector element 0",
            ),
            (
                args(&["CACHE.SETEMBEDDING", "t", "m", "[]"]),
                "ERR vector has 0 dimensions",
            ),
            (
                args(&["CACHE.SETEMBEDDING", "t", "m", "{\"a\":1}"]),
                "ERR invalid JSON",
            ),
            (
                args(&["CACHE.SETEMBEDDING", "t", "m", "[1]", "FORMAT", "XML"]),
                "ERR FORMAT must be",
            ),
            (
                args(&["CACHE.SETEMBEDDING", "t", "m", "[1]", "FORMAT"]),
                "ERR syntax error",
            ),
            (
                args(&["CACHE.SETEMBEDDING", "t", "m", "abc", "FORMAT", "FP32"]),
                "ERR FP32 vector is 3 bytes",
            ),
            (
                args(&["CACHE.GETEMBEDDING", "t", "m", "FORMAT", "XML"]),
                "ERR FORMAT must be",
            ),
            (
                args(&["CACHE.GETEMBEDDING", "t", "m", "FORMAT"]),
                "ERR syntax error",
            ),
            (
                vec![
                    b"CACHE.SETEMBEDDING".to_vec(),
                    b"t".to_vec(),
                    b"m".to_vec(),
                    nan,
                    b"FORMAT".to_vec(),
                    b"FP32".to_vec(),
                ],
                "ERR vector element 0 is not a finite",
            ),
            (
                vec![
                    b"CACHE.SETEMBEDDING".to_vec(),
                    b"t".to_vec(),
                    b"m".to_vec(),
                    inf,
                    b"FORMAT".to_vec(),
                    b"fp32".to_vec(),
                ],
                "ERR vector element 1 is not a finite",
            ),
            (
                vec![
                    b"CACHE.SETEMBEDDING".to_vec(),
                    b"t".to_vec(),
                    b"m".to_vec(),
                    too_many,
                    b"FORMAT".to_vec(),
                    b"FP32".to_vec(),
                ],
                "ERR vector has 65537 dimensions",
            ),
            (
                vec![
                    b"CACHE.SETEMBEDDING".to_vec(),
                    b"t".to_vec(),
                    b"m".to_vec(),
                    too_many_json.into_bytes(),
                ],
                "ERR vector has 65537 dimensions",
            ),
            (
                vec![
                    b"CACHE.SETEMBEDDING".to_vec(),
                    b"t\xff".to_vec(),
                    b"m".to_vec(),
                    b"[1]".to_vec(),
                ],
                "ERR text must be valid UTF-8",
            ),
            (
                vec![
                    b"CACHE.GETEMBEDDING".to_vec(),
                    b"t".to_vec(),
                    b"m\xfe".to_vec(),
                ],
                "ERR model must be valid UTF-8",
            ),
            (
                vec![
                    b"CACHE.SETDOCUMENTS".to_vec(),
                    b"5".to_vec(),
                    b"\xff".to_vec(),
                    b"[]".to_vec(),
                ],
                "ERR category must be valid UTF-8",
            ),
            (
                args(&["CACHE.KEY", "documents", "5"]),
                "ERR wrong number of arguments",
            ),
            (
                args(&["CACHE.KEY", "embedding", "t", "m", "FORMAT", "FP32"]),
                "ERR wrong number of arguments",
            ),
            (args(&["CACHE.KEY", "nope", "5"]), "ERR unknown key kind"),
        ];
        for (a, prefix) in &cases {
            let mut command = redis::cmd(std::str::from_utf8(&a[0]).unwrap());
            for x in &a[1..] {
                command.arg(x.as_slice());
            }
            let e = err_of(&mut c, &command);
            assert!(
                e.starts_with(prefix),
                "{:?}: {e}",
                String::from_utf8_lossy(&a[1..].concat()[..a[1..].concat().len().min(40)])
            );
        }
        // A value that is not a packed vector is an error, not a crash.
        let _: () = c
            .set(format!("embedding:{}:bad", md5_hex("t")), "abcde")
            .unwrap();
        let e = err_of(&mut c, cmd("CACHE.GETEMBEDDING").arg("t").arg("bad"));
        assert!(e.starts_with("ERR the value at this embedding key"), "{e}");
        let _: () = c.del(format!("embedding:{}:bad", md5_hex("t"))).unwrap();
        let _: () = c.lpush("popular_documents:9:all", "x").unwrap();
        let e = err_of(&mut c, cmd("CACHE.GETDOCUMENTS").arg(9).arg("all"));
        assert!(e.starts_with("WRONGTYPE"), "{e}");
        let _: () = c.del("popular_documents:9:all").unwrap();
        assert_eq!(snapshot(&mut c), before);
        s.assert_log_clean();
    });
}

fn args(a: &[&str]) -> Vec<Vec<u8>> {
    a.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn snapshot(c: &mut redis::Connection) -> Vec<(String, Vec<u8>)> {
    let mut keys: Vec<String> = c.keys("*").unwrap();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let v: Vec<u8> = cmd("DUMP").arg(&k).query(c).unwrap();
            (k, v)
        })
        .collect()
}

#[test]
fn tagged_keys_route_as_the_contract_says() {
    on_each_server(|s| {
        let mut c = s.conn();
        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("cachekit.key-style")
            .arg("tagged")
            .query(&mut c)
            .unwrap();
        let got: String = cmd("CACHE.KEY")
            .arg("user_with_roles")
            .arg(42)
            .query(&mut c)
            .unwrap();
        assert_eq!(got, "user_with_roles:{42}");
        let got: String = cmd("CACHE.KEY")
            .arg("documents")
            .arg(10)
            .arg("news")
            .query(&mut c)
            .unwrap();
        assert_eq!(got, "popular_documents:10:{news}");
        let got: String = cmd("CACHE.KEY")
            .arg("embedding")
            .arg("hello")
            .arg("m")
            .query(&mut c)
            .unwrap();
        let slot: i64 = cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&got)
            .query(&mut c)
            .unwrap_or(-1);
        if slot >= 0 {
            let text_slot: i64 = cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg("hello")
                .query(&mut c)
                .unwrap();
            assert_eq!(slot, text_slot);
        }
        assert!(
            got.starts_with("embedding:{") && got.ends_with(&format!("}}{}:m", md5_hex("hello"))),
            "{got}"
        );
        let e = err_of(
            &mut c,
            cmd("CACHE.SETDOCUMENTS").arg(1).arg("a}b").arg("[]"),
        );
        assert!(e.starts_with("ERR category must not contain '}'"), "{e}");
        let _: () = cmd("CACHE.SETEMBEDDING")
            .arg("hello")
            .arg("m")
            .arg("[2]")
            .query(&mut c)
            .unwrap();
        let v: Vec<u8> = c.get(&got).unwrap();
        assert_eq!(v, fp32(&[2.0]));
    });
}

/// MEMORY USAGE of an embedding packed by the module next to the same
/// vector stored as JSON text; printed for docs/commands.md.
#[test]
fn embeddings_are_compact() {
    on_each_server(|s| {
        let mut c = s.conn();
        for dims in [384usize, 768, 1536, 3072] {
            // Typical embedding values: normalised, 7-9 significant digits.
            let values: Vec<f32> = (0..dims)
                .map(|i| (i as f32 * 0.618_034).sin() * 0.08)
                .collect();
            let json = format!(
                "[{}]",
                values
                    .iter()
                    .map(|v| format!("{}", *v as f64))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let _: () = cmd("CACHE.SETEMBEDDING")
                .arg("t")
                .arg(dims)
                .arg(&json)
                .query(&mut c)
                .unwrap();
            let key: String = cmd("CACHE.KEY")
                .arg("embedding")
                .arg("t")
                .arg(dims)
                .query(&mut c)
                .unwrap();
            let packed: i64 = cmd("MEMORY").arg("USAGE").arg(&key).query(&mut c).unwrap();
            let _: () = c.set("json", &json).unwrap();
            let text: i64 = cmd("MEMORY")
                .arg("USAGE")
                .arg("json")
                .query(&mut c)
                .unwrap();
            eprintln!(
                "{:?} dims {dims}: packed {packed} bytes, JSON text {text} bytes ({} chars)",
                s.flavor,
                json.len()
            );
            // 4 bytes a dimension plus the allocator's size class and the
            // key: a 1536-dimension vector (6,144 bytes) takes jemalloc's
            // 7,168-byte class on Redis 7.0, about a sixth of its JSON text.
            assert!(packed <= dims as i64 * 4 * 6 / 5 + 200, "{dims}: {packed}");
            assert!(packed * 5 < text, "{dims}: {packed} vs {text}");
        }
        let _: Value = cmd("DEL").arg("json").query(&mut c).unwrap();
    });
}

/// The SET commands send the events `SET key value EX n` sends, and
/// replicate the stored bytes with their absolute expiry: a replica holds
/// the same packed vector.
#[test]
fn events_and_replication_as_for_the_other_sets() {
    on_each_server(|s| {
        let mut c = s.conn();
        let _: () = cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("KEA")
            .query(&mut c)
            .unwrap();
        let mut sub = s.conn();
        let mut pubsub = sub.as_pubsub();
        pubsub.psubscribe("__keyevent@0__:*").unwrap();
        pubsub
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let _: () = cmd("CACHE.SETEMBEDDING")
            .arg("t")
            .arg("m")
            .arg("[0.5, 2]")
            .query(&mut c)
            .unwrap();
        let key = format!("embedding:{}:m", md5_hex("t"));
        let mut events = Vec::new();
        for _ in 0..2 {
            let msg = pubsub.get_message().unwrap();
            let payload: String = msg.get_payload().unwrap();
            events.push((msg.get_channel_name().to_string(), payload));
        }
        assert_eq!(
            events,
            [
                ("__keyevent@0__:set".to_string(), key.clone()),
                ("__keyevent@0__:expire".to_string(), key.clone())
            ]
        );
        drop(pubsub);

        let replica = common::Server::start(s.flavor);
        let mut rc = replica.conn();
        let _: () = cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(s.port)
            .query(&mut rc)
            .unwrap();
        common::wait_until("the replica syncs", || {
            common::info_field(&mut rc, "replication", "master_link_status") == "up"
        });
        let _: () = cmd("CACHE.SETDOCUMENTS")
            .arg(4)
            .arg("all")
            .arg("[1]")
            .query(&mut c)
            .unwrap();
        let _: () = cmd("CACHE.SETEMBEDDING")
            .arg("t2")
            .arg("m")
            .arg(fp32(&[1.25, -3.0]))
            .arg("FORMAT")
            .arg("FP32")
            .query(&mut c)
            .unwrap();
        let key2 = format!("embedding:{}:m", md5_hex("t2"));
        common::wait_until("the writes reach the replica", || {
            rc.exists::<_, bool>(&key2).unwrap_or(false)
        });
        for k in [key.as_str(), key2.as_str(), "popular_documents:4:all"] {
            let a: Vec<u8> = c.get(k).unwrap();
            let b: Vec<u8> = rc.get(k).unwrap();
            assert_eq!(a, b, "{k}");
            let at_a: i64 = cmd("PEXPIRETIME").arg(k).query(&mut c).unwrap();
            let at_b: i64 = cmd("PEXPIRETIME").arg(k).query(&mut rc).unwrap();
            assert_eq!(at_a, at_b, "{k}");
        }
        let got: Vec<u8> = cmd("CACHE.GETEMBEDDING")
            .arg("t2")
            .arg("m")
            .query(&mut rc)
            .unwrap();
        assert_eq!(got, fp32(&[1.25, -3.0]));
    });
}

/// The new configs as `loadmodule` arguments, validated as `CONFIG SET` does.
#[test]
fn new_configs_load_from_module_arguments() {
    for flavor in common::Flavor::ALL {
        let s = common::Server::with_module_args(
            flavor,
            &[
                "document-ttl",
                "120",
                "embedding-ttl",
                "240",
                "purge-threshold",
                "0",
                "purge-interval",
                "5",
            ],
        );
        let mut c = s.conn();
        let got: Vec<String> = cmd("CONFIG")
            .arg("GET")
            .arg("cachekit.*")
            .query(&mut c)
            .unwrap();
        for (name, value) in [
            ("cachekit.document-ttl", "120"),
            ("cachekit.embedding-ttl", "240"),
            ("cachekit.purge-threshold", "0"),
            ("cachekit.purge-interval", "5"),
        ] {
            let i = got.iter().position(|g| g == name).expect(name);
            assert_eq!(got[i + 1], value, "{name}");
        }
        for bad in [
            &["purge-threshold", "101"][..],
            &["purge-interval", "0"],
            &["document-ttl", "0"],
            &["embedding-ttl", "abc"],
        ] {
            let opts = common::Options {
                module_args: bad.iter().map(|a| a.to_string()).collect(),
                ..common::Options::default()
            };
            assert!(
                common::Server::try_start(flavor, &opts).is_err(),
                "{flavor:?} loaded with {bad:?}"
            );
        }
    }
}
