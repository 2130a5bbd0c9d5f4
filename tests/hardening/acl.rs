//! ACL on the keys the module builds, and clients that are not key-checked (AOF loading, the replication link).

use super::*;

const MODULE_COMMANDS: &[&str] = &[
    "cache.setuser",
    "cache.getuser",
    "cache.setpermissions",
    "cache.getpermissions",
    "cache.setsession",
    "cache.getsession",
    "cache.invalidateuser",
    "cache.setsearch",
    "cache.getsearch",
    "cache.setrag",
    "cache.getrag",
    "cache.settranslation",
    "cache.gettranslation",
    "cache.setuserroles",
    "cache.getuserroles",
    "cache.setdocuments",
    "cache.getdocuments",
    "cache.setembedding",
    "cache.getembedding",
    "cache.key",
    "cache.stats",
    "ratelimit.check",
    "ratelimit.peek",
    "ratelimit.info",
    "ratelimit.reset",
    "ratelimit.acquire",
    "ratelimit.checkall",
    "ratelimit.refund",
];

/// `ACL SETUSER` granting every module command by name (module commands
/// belong to no ACL category on Redis 7.0) plus the given rules.
pub(crate) fn acl_user(c: &mut RawConn, name: &str, rules: &[&str]) {
    let grants: Vec<String> = MODULE_COMMANDS.iter().map(|m| format!("+{m}")).collect();
    let mut args: Vec<&str> = vec!["ACL", "SETUSER", name, "reset", "on", ">pw"];
    args.extend(grants.iter().map(String::as_str));
    args.extend(["+multi", "+exec", "+eval", "+ping", "+get"]);
    args.extend(rules);
    assert_eq!(call(c, &args), ok());
}

pub(crate) fn login(s: &Server, name: &str) -> RawConn {
    let mut c = RawConn::connect(s.port);
    assert_eq!(call(&mut c, &["AUTH", name, "pw"]), ok());
    c
}

#[test]
fn acl_key_patterns_apply_to_the_keys_the_module_builds() {
    for flavor in Flavor::ALL {
        let s = Server::start(flavor);
        let mut admin = RawConn::connect(s.port);
        assert_eq!(
            call(&mut admin, &["CACHE.SETUSER", "5", r#"{"u":5}"#]),
            ok()
        );
        assert_eq!(
            call(&mut admin, &["CACHE.SETSESSION", "5", r#"{"s":5}"#]),
            ok()
        );
        acl_user(&mut admin, "sess", &["~session:*"]);
        acl_user(&mut admin, "sessro", &["%R~session:*"]);
        acl_user(&mut admin, "sesswo", &["%W~session:*"]);
        acl_user(&mut admin, "limits", &["%R~rate_limit:*"]);
        acl_user(&mut admin, "limitswo", &["%W~rate_limit:*"]);

        // Limited to ~session:*: sessions yes, users no.
        let mut c = login(&s, "sess");
        assert_eq!(call(&mut c, &["CACHE.GETSESSION", "5"]), bulk(r#"{"s":5}"#));
        assert_eq!(call(&mut c, &["CACHE.SETSESSION", "6", "{}"]), ok());
        let e = expect_error(&call(&mut c, &["CACHE.GETUSER", "5"]), "NOPERM");
        assert!(e.contains("'user:5'"), "the refused key is named: {e}");
        let e = expect_error(&call(&mut c, &["CACHE.SETUSER", "5", "{}"]), "NOPERM");
        assert!(e.contains("'user:5'"), "{e}");
        let e = expect_error(
            &call(&mut c, &["CACHE.SETPERMISSIONS", "5", "[]"]),
            "NOPERM",
        );
        assert!(e.contains("'user_permissions:5'"), "{e}");
        let e = expect_error(&call(&mut c, &["RATELIMIT.CHECK", "5"]), "NOPERM");
        assert!(e.contains("'rate_limit:default:5'"), "{e}");
        let e = expect_error(&call(&mut c, &["CACHE.GETSEARCH", "q", "5"]), "NOPERM");
        assert!(e.contains("'search:"), "{e}");
        expect_error(
            &call(&mut c, &["CACHE.SETRAG", "q", "5", "h", "{}"]),
            "NOPERM",
        );
        expect_error(
            &call(&mut c, &["CACHE.GETTRANSLATION", "t", "en", "ru"]),
            "NOPERM",
        );
        // INVALIDATEUSER needs all four keys: refused as a whole, nothing deleted.
        let e = expect_error(&call(&mut c, &["CACHE.INVALIDATEUSER", "5"]), "NOPERM");
        assert!(e.contains("'user:5'"), "{e}");
        assert_eq!(
            call(&mut admin, &["EXISTS", "user:5", "session:5"]),
            Resp::Int(2)
        );
        // Key-less commands are not affected.
        assert!(!call(&mut c, &["CACHE.KEY", "user", "5"]).is_error());
        assert!(!call(&mut c, &["CACHE.STATS"]).is_error());
        // The refusal is in ACL LOG like Redis's own key refusals.
        let log = call(&mut admin, &["ACL", "LOG", "1"]).flat();
        for want in ["key", "sess", "user:5", "module"] {
            assert!(
                log.iter().any(|f| f == want),
                "ACL LOG misses {want}: {log:?}"
            );
        }

        // The same inside MULTI/EXEC and a Lua script: the caller's user applies.
        for args in [
            &["MULTI"][..],
            &["CACHE.GETSESSION", "5"],
            &["CACHE.GETUSER", "5"],
        ] {
            c.send(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>())
                .unwrap();
        }
        assert_eq!(c.read().unwrap(), ok());
        assert_eq!(c.read().unwrap(), Resp::Simple(b"QUEUED".to_vec()));
        assert_eq!(c.read().unwrap(), Resp::Simple(b"QUEUED".to_vec()));
        let Resp::Array(results) = call(&mut c, &["EXEC"]) else {
            panic!("EXEC");
        };
        assert_eq!(results[0], bulk(r#"{"s":5}"#));
        expect_error(&results[1], "NOPERM");
        let r = call(
            &mut c,
            &[
                "EVAL",
                "return redis.pcall('CACHE.GETUSER', ARGV[1])",
                "0",
                "5",
            ],
        );
        let e = expect_error(&r, "NOPERM");
        assert!(e.contains("'user:5'"), "{e}");
        let r = call(
            &mut c,
            &[
                "EVAL",
                "return redis.call('CACHE.GETSESSION', ARGV[1])",
                "0",
                "5",
            ],
        );
        assert_eq!(r, bulk(r#"{"s":5}"#));

        // Read-only and write-only patterns.
        let mut ro = login(&s, "sessro");
        assert_eq!(
            call(&mut ro, &["CACHE.GETSESSION", "5"]),
            bulk(r#"{"s":5}"#)
        );
        let e = expect_error(&call(&mut ro, &["CACHE.SETSESSION", "5", "{}"]), "NOPERM");
        assert!(e.contains("'session:5'"), "{e}");
        let mut wo = login(&s, "sesswo");
        assert_eq!(call(&mut wo, &["CACHE.SETSESSION", "7", "{}"]), ok());
        expect_error(&call(&mut wo, &["CACHE.GETSESSION", "7"]), "NOPERM");
        let mut lim = login(&s, "limits");
        assert!(!call(&mut lim, &["RATELIMIT.PEEK", "5"]).is_error());
        assert!(!call(&mut lim, &["RATELIMIT.INFO", "5"]).is_error());
        expect_error(&call(&mut lim, &["RATELIMIT.CHECK", "5"]), "NOPERM");
        expect_error(&call(&mut lim, &["RATELIMIT.RESET", "5"]), "NOPERM");
        // CHECK replies with what it read, so a write-only pattern may not
        // run it, as it may not run INCR; RESET only deletes, as DEL does.
        let mut limwo = login(&s, "limitswo");
        let e = expect_error(&call(&mut limwo, &["RATELIMIT.CHECK", "5"]), "NOPERM");
        assert!(
            e.contains("read and write the 'rate_limit:default:5'"),
            "{e}"
        );
        expect_error(&call(&mut limwo, &["RATELIMIT.PEEK", "5"]), "NOPERM");
        assert_eq!(call(&mut limwo, &["RATELIMIT.RESET", "5"]), Resp::Int(0));
        // RATELIMIT.RECORD names its real key, which Redis checks itself:
        // a read-only pattern may not write through it.
        assert_eq!(
            call(
                &mut admin,
                &[
                    "ACL",
                    "SETUSER",
                    "recro",
                    "on",
                    ">pw",
                    "+@all",
                    "%R~rate_limit:*"
                ]
            ),
            ok()
        );
        let mut recro = login(&s, "recro");
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            .to_string();
        let record = [
            "RATELIMIT.RECORD",
            "rate_limit:default:rec",
            now_ms.as_str(),
            "5",
            "60000",
            "1",
        ];
        expect_error(&call(&mut recro, &record), "NOPERM");
        assert_eq!(
            call(&mut admin, &["EXISTS", "rate_limit:default:rec"]),
            Resp::Int(0)
        );
        assert_eq!(
            call(
                &mut admin,
                &[
                    "ACL",
                    "SETUSER",
                    "recrw",
                    "on",
                    ">pw",
                    "+@all",
                    "~rate_limit:*"
                ]
            ),
            ok()
        );
        let mut recrw = login(&s, "recrw");
        assert_eq!(call(&mut recrw, &record), ok());
        assert_eq!(
            call(&mut admin, &["DEL", "rate_limit:default:rec"]),
            Resp::Int(1)
        );

        // Nothing a refused command touched changed.
        assert_eq!(call(&mut admin, &["GET", "user:5"]), bulk(r#"{"u":5}"#));
        assert_eq!(call(&mut admin, &["GET", "session:5"]), bulk(r#"{"s":5}"#));
        assert_eq!(
            call(&mut admin, &["EXISTS", "rate_limit:default:5"]),
            Resp::Int(0)
        );

        // Module commands are in no ACL category on Redis 7.0: @read/@write
        // do not grant them, naming them does.
        if flavor == Flavor::Redis {
            assert_eq!(
                call(
                    &mut admin,
                    &["ACL", "SETUSER", "cats", "on", ">pw", "~*", "+@read", "+@write"]
                ),
                ok()
            );
            let mut cats = login(&s, "cats");
            let e = expect_error(&call(&mut cats, &["CACHE.GETUSER", "5"]), "NOPERM");
            assert!(e.contains("cache.getuser"), "{e}");
        }
        s.assert_log_clean();
    }
}

/// A default user that may touch no key, and an admin to look with.
const RESTRICTED_DEFAULT: &[&str] = &[
    "--user",
    "default",
    "on",
    "nopass",
    "resetkeys",
    "+@all",
    "--user",
    "admin",
    "on",
    ">pw",
    "~*",
    "+@all",
];

/// Module commands applied by clients without a user: the AOF loader and
/// the replication link. They replay what was already checked, so the
/// module must neither crash on the missing user nor refuse them, even when
/// the default user may touch no key at all.
#[test]
fn aof_loading_and_the_replication_link_are_not_key_checked() {
    let module = common::module_path();
    for flavor in Flavor::ALL {
        // An AOF holding module commands verbatim (as a client or an older
        // release could have written them), loaded with a key-less default user.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/test-servers")
            .join(format!("{}-aof-{flavor:?}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("appendonlydir")).unwrap();
        let mut aof = resp::encode(&[b"SELECT", b"0"]);
        aof.extend(resp::encode(&[
            b"CACHE.SETUSER",
            b"1",
            br#"{"from":"aof"}"#,
        ]));
        aof.extend(resp::encode(&[b"RATELIMIT.CHECK", b"aof", b"5", b"60"]));
        aof.extend(resp::encode(&[b"CACHE.INVALIDATEUSER", b"2"]));
        std::fs::write(dir.join("appendonlydir/appendonly.aof.1.incr.aof"), aof).unwrap();
        std::fs::write(
            dir.join("appendonlydir/appendonly.aof.manifest"),
            "file appendonly.aof.1.incr.aof seq 1 type i\n",
        )
        .unwrap();
        let mut server_args: Vec<String> =
            vec!["--loadmodule".into(), module.display().to_string()];
        server_args.extend(["--appendonly", "yes"].map(String::from));
        server_args.extend(RESTRICTED_DEFAULT.iter().map(|a| a.to_string()));
        let s = Server::with(
            flavor,
            Options {
                load_module: false,
                dir: Some(dir.clone()),
                server_args,
                ..Options::default()
            },
        );
        let mut admin = login(&s, "admin");
        assert_eq!(
            call(&mut admin, &["GET", "user:1"]),
            bulk(r#"{"from":"aof"}"#)
        );
        assert_eq!(
            call(&mut admin, &["EXISTS", "rate_limit:default:aof"]),
            Resp::Int(1)
        );
        // Clients are still checked.
        let mut c = RawConn::connect(s.port);
        expect_error(&call(&mut c, &["CACHE.GETUSER", "1"]), "NOPERM");
        s.assert_log_clean();
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);

        // A primary that streams module commands verbatim to a replica whose
        // default user may touch no key: a replica from its start, and a
        // server that turns replica at run time (the role-change event).
        replica_applies_the_link_unchecked(flavor, &module, false);
        replica_applies_the_link_unchecked(flavor, &module, true);
    }
}

fn replica_applies_the_link_unchecked(flavor: Flavor, module: &Path, at_run_time: bool) {
    let master = FakePrimary::start(vec![
        vec![b"SELECT".to_vec(), b"0".to_vec()],
        vec![
            b"CACHE.SETUSER".to_vec(),
            b"1".to_vec(),
            br#"{"from":"primary"}"#.to_vec(),
        ],
        vec![
            b"RATELIMIT.CHECK".to_vec(),
            b"link".to_vec(),
            b"5".to_vec(),
            b"60".to_vec(),
        ],
        vec![b"CACHE.SETSESSION".to_vec(), b"1".to_vec(), b"{}".to_vec()],
        vec![b"CACHE.INVALIDATEUSER".to_vec(), b"1".to_vec()],
        vec![b"SET".to_vec(), b"done".to_vec(), b"1".to_vec()],
    ]);
    let port = master.port.to_string();
    let replicaof: &[&str] = if at_run_time {
        &[]
    } else {
        &["--replicaof", "127.0.0.1", &port]
    };
    let replica = server_with_module(flavor, module, &[replicaof, RESTRICTED_DEFAULT].concat());
    let mut admin = login(&replica, "admin");
    if at_run_time {
        // Checked as a primary first, so the role is known before it changes.
        let mut c = RawConn::connect(replica.port);
        expect_error(&call(&mut c, &["CACHE.GETUSER", "1"]), "NOPERM");
        assert_eq!(
            call(&mut admin, &["REPLICAOF", "127.0.0.1", &port]),
            Resp::Simple("OK".into())
        );
    }
    wait_until("the stream applied", || {
        call(&mut admin, &["GET", "done"]) == bulk("1")
    });
    assert_eq!(
        call(&mut admin, &["EXISTS", "user:1", "session:1"]),
        Resp::Int(0)
    );
    assert_eq!(
        call(&mut admin, &["EXISTS", "rate_limit:default:link"]),
        Resp::Int(1)
    );
    if at_run_time {
        // A primary again: clients are still checked.
        assert_eq!(
            call(&mut admin, &["REPLICAOF", "NO", "ONE"]),
            Resp::Simple("OK".into())
        );
        let mut c = RawConn::connect(replica.port);
        expect_error(&call(&mut c, &["CACHE.GETUSER", "1"]), "NOPERM");
    }
    replica.assert_log_clean();
}

/// Just enough of a primary for a replica: the handshake, an empty RDB,
/// then the given commands; the connection stays open until dropped.
struct FakePrimary {
    port: u16,
    _thread: std::thread::JoinHandle<()>,
}

impl FakePrimary {
    fn start(commands: Vec<Vec<Vec<u8>>>) -> FakePrimary {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            loop {
                // One inline or RESP command from the replica.
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let mut words: Vec<String> = Vec::new();
                if let Some(n) = line.trim().strip_prefix('*') {
                    for _ in 0..n.parse::<usize>().unwrap_or(0) {
                        let mut len = String::new();
                        reader.read_line(&mut len).unwrap();
                        let len: usize = len.trim()[1..].parse().unwrap();
                        let mut buf = vec![0u8; len + 2];
                        reader.read_exact(&mut buf).unwrap();
                        words.push(String::from_utf8_lossy(&buf[..len]).into_owned());
                    }
                } else {
                    words = line.split_whitespace().map(str::to_string).collect();
                }
                let name = words
                    .first()
                    .map(|w| w.to_ascii_uppercase())
                    .unwrap_or_default();
                match name.as_str() {
                    "PING" => writer.write_all(b"+PONG\r\n").unwrap(),
                    "PSYNC" | "SYNC" => {
                        // An RDB with no data and its checksum left out (zero).
                        let rdb = b"REDIS0009\xff\0\0\0\0\0\0\0\0";
                        let mut out = format!(
                            "+FULLRESYNC {} 0\r\n${}\r\n",
                            "0123456789abcdef0123456789abcdef01234567",
                            rdb.len()
                        )
                        .into_bytes();
                        out.extend_from_slice(rdb);
                        for c in &commands {
                            let refs: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
                            out.extend(resp::encode(&refs));
                        }
                        writer.write_all(&out).unwrap();
                        // Keep the link up; drain what the replica sends.
                        let mut sink = [0u8; 4096];
                        while reader.read(&mut sink).unwrap_or(0) > 0 {}
                        return;
                    }
                    _ => writer.write_all(b"+OK\r\n").unwrap(),
                }
            }
        });
        FakePrimary {
            port,
            _thread: thread,
        }
    }
}

/// Scripts find their caller's user with a probe call of `HELLO`, or of
/// `AUTH` where `rename-command` took `HELLO` away; neither ever runs.
#[test]
fn scripts_are_checked_as_their_caller_where_hello_is_renamed() {
    for flavor in Flavor::ALL {
        for renamed in ["", "MYHELLO"] {
            let s = Server::with(
                flavor,
                Options {
                    server_args: vec!["--rename-command".into(), "HELLO".into(), renamed.into()],
                    ..Default::default()
                },
            );
            let mut admin = RawConn::connect(s.port);
            let script = "return redis.pcall(unpack(ARGV))";
            let d = call(
                &mut admin,
                &["EVAL", script, "0", "RATELIMIT.CHECK", "a", "5", "10"],
            );
            assert!(!d.is_error(), "{flavor:?} {renamed:?}: {d:?}");
            acl_user(&mut admin, "sess", &["~session:*"]);
            let mut c = login(&s, "sess");
            assert_eq!(
                call(
                    &mut c,
                    &["EVAL", script, "0", "CACHE.SETSESSION", "1", "{}"]
                ),
                ok()
            );
            let e = expect_error(
                &call(&mut c, &["EVAL", script, "0", "CACHE.GETUSER", "1"]),
                "NOPERM",
            );
            assert!(e.contains("'user:1'"), "{flavor:?} {renamed:?}: {e}");
            // The probe never ran AUTH: no failed authentication was logged.
            let log = call(&mut admin, &["ACL", "LOG"]).flat();
            assert!(!log.iter().any(|f| f == "auth"), "{log:?}");
            // Only the login itself ran AUTH.
            let Resp::Bulk(stats) = call(&mut admin, &["INFO", "commandstats"]) else {
                panic!("INFO commandstats");
            };
            let stats = String::from_utf8_lossy(&stats).into_owned();
            assert!(stats.contains("cmdstat_auth:calls=1,"), "{stats}");
            assert!(!stats.contains("cmdstat_hello"), "{stats}");
            s.assert_log_clean();
        }
    }
}

/// The newer kinds are key-checked on the keys they build: users with
/// roles, popular documents and embeddings, read-only and write-only.
#[test]
fn acl_applies_to_users_with_roles_documents_and_embeddings() {
    for flavor in Flavor::ALL {
        let s = Server::start(flavor);
        let mut admin = RawConn::connect(s.port);
        assert_eq!(call(&mut admin, &["CACHE.SETUSERROLES", "5", "{}"]), ok());
        acl_user(&mut admin, "docs", &["~popular_documents:*"]);
        acl_user(&mut admin, "embro", &["%R~embedding:*"]);
        let mut c = login(&s, "docs");
        assert_eq!(
            call(&mut c, &["CACHE.SETDOCUMENTS", "3", "all", "[]"]),
            ok()
        );
        assert_eq!(
            call(&mut c, &["CACHE.GETDOCUMENTS", "3", "all"]),
            bulk("[]")
        );
        let e = expect_error(&call(&mut c, &["CACHE.GETUSERROLES", "5"]), "NOPERM");
        assert!(e.contains("'user_with_roles:5'"), "{e}");
        let e = expect_error(
            &call(&mut c, &["CACHE.SETEMBEDDING", "t", "m", "[1]"]),
            "NOPERM",
        );
        assert!(e.contains("'embedding:"), "{e}");
        // Read-only on embeddings: GET yes, SET no, nothing written.
        let mut r = login(&s, "embro");
        assert_eq!(call(&mut r, &["CACHE.GETEMBEDDING", "t", "m"]), Resp::Nil);
        expect_error(
            &call(&mut r, &["CACHE.SETEMBEDDING", "t", "m", "[1]"]),
            "NOPERM",
        );
        expect_error(&call(&mut r, &["CACHE.GETDOCUMENTS", "3", "all"]), "NOPERM");
        assert_eq!(call(&mut admin, &["DBSIZE"]), Resp::Int(2));
        s.assert_log_clean();
    }
}

/// CHECKALL is key-checked on every limiter it names: one key outside the
/// user's patterns refuses the whole call, and nothing is written anywhere.
#[test]
fn acl_applies_to_every_limiter_of_checkall() {
    for flavor in Flavor::ALL {
        let s = Server::with_module_args(flavor, &["ratelimit-policies", "a:5/60 b:5/60"]);
        let mut admin = RawConn::connect(s.port);
        acl_user(&mut admin, "onlya", &["~rate_limit:a:*"]);
        let mut c = login(&s, "onlya");
        let admitted = call(&mut c, &["RATELIMIT.CHECKALL", "1", "a", "x"]).flat();
        assert_eq!(
            admitted.get(..2),
            Some(&["allowed".to_string(), "1".to_string()][..])
        );
        let e = expect_error(
            &call(&mut c, &["RATELIMIT.CHECKALL", "2", "a", "x", "b", "x"]),
            "NOPERM",
        );
        assert!(e.contains("'rate_limit:b:x'"), "{e}");
        let e = expect_error(
            &call(&mut c, &["RATELIMIT.CHECKALL", "2", "b", "y", "a", "y"]),
            "NOPERM",
        );
        assert!(e.contains("'rate_limit:b:y'"), "{e}");
        // Only the first, admitted call counted anything.
        let info = call(&mut admin, &["RATELIMIT.INFO", "x", "ACTION", "a"]).flat();
        assert_eq!(
            info.get(..2),
            Some(&["current_requests".to_string(), "1".to_string()][..])
        );
        assert_eq!(call(&mut admin, &["DBSIZE"]), Resp::Int(1));
        s.assert_log_clean();
    }
}
