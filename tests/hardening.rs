//! Hardening against real Redis 7.0 and Valkey 8 servers: ACL on the keys the
//! module builds, MULTI/EXEC and Lua, maxmemory, MODULE UNLOAD, and the panic
//! guard (with a test build that panics on purpose).

mod common;
mod resp;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{wait_until, Flavor, Options, Server};
use resp::{RawConn, Resp};

fn bulk(s: &str) -> Resp {
    Resp::Bulk(s.as_bytes().to_vec())
}

fn ok() -> Resp {
    Resp::Simple(b"OK".to_vec())
}

fn call(c: &mut RawConn, args: &[&str]) -> Resp {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.call(&args).expect("reply")
}

fn expect_error(r: &Resp, prefix: &str) -> String {
    match r.error_text() {
        Some(e) if e.starts_with(prefix) => e,
        _ => panic!("expected an error starting with {prefix:?}, got {r:?}"),
    }
}

fn info_field(c: &mut RawConn, section: &str, field: &str) -> String {
    let Resp::Bulk(text) = call(c, &["INFO", section]) else {
        panic!("INFO {section} is not a bulk string");
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .trim()
        .to_string()
}

/// Every key with its DUMP and absolute expiry, sorted.
fn keyspace(c: &mut RawConn) -> Vec<(Vec<u8>, Resp, Resp)> {
    let Resp::Array(keys) = call(c, &["KEYS", "*"]) else {
        panic!("KEYS");
    };
    let mut out = Vec::new();
    for k in keys {
        let Resp::Bulk(k) = k else { panic!("key") };
        let dump = c.call(&[b"DUMP", &k]).unwrap();
        let at = c.call(&[b"PEXPIRETIME", &k]).unwrap();
        out.push((k, dump, at));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn server_with_module(flavor: Flavor, module: &Path, extra: &[&str]) -> Server {
    let mut server_args: Vec<String> = vec!["--loadmodule".into(), module.display().to_string()];
    server_args.extend(extra.iter().map(|s| s.to_string()));
    Server::with(
        flavor,
        Options {
            load_module: false,
            server_args,
            ..Options::default()
        },
    )
}

// ---------------------------------------------------------------- ACL

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
    "cache.key",
    "cache.stats",
    "ratelimit.check",
    "ratelimit.peek",
    "ratelimit.info",
    "ratelimit.reset",
];

/// `ACL SETUSER` granting every module command by name (module commands
/// belong to no ACL category on Redis 7.0) plus the given rules.
fn acl_user(c: &mut RawConn, name: &str, rules: &[&str]) {
    let grants: Vec<String> = MODULE_COMMANDS.iter().map(|m| format!("+{m}")).collect();
    let mut args: Vec<&str> = vec!["ACL", "SETUSER", name, "reset", "on", ">pw"];
    args.extend(grants.iter().map(String::as_str));
    args.extend(["+multi", "+exec", "+eval", "+ping", "+get"]);
    args.extend(rules);
    assert_eq!(call(c, &args), ok());
}

fn login(s: &Server, name: &str) -> RawConn {
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

// ------------------------------------------------- MULTI/EXEC and Lua

/// One scenario touching every command, results, errors and all.
/// Redis-level arity errors are left out: inside MULTI they abort the
/// whole transaction at queue time, which is Redis's rule, not the module's.
fn scenario() -> Vec<Vec<&'static str>> {
    vec![
        vec!["CACHE.SETUSER", "1", r#"{"a":1}"#],
        vec!["CACHE.GETUSER", "1"],
        vec!["CACHE.GETUSER", "2"],
        vec!["CACHE.SETUSER", "1", "not json"],
        vec!["CACHE.SETUSER", "1", "{}", "TTL", "0"],
        vec!["CACHE.SETPERMISSIONS", "1", r#"["read"]"#],
        vec!["CACHE.GETPERMISSIONS", "1"],
        vec!["CACHE.SETSESSION", "7", r#"{"s":1}"#, "TTL", "100"],
        vec!["CACHE.GETSESSION", "7"],
        vec!["LPUSH", "user:3", "x"],
        vec!["CACHE.GETUSER", "3"],
        vec!["CACHE.SETUSER", "3", "{}"],
        vec!["CACHE.INVALIDATEUSER", "1"],
        vec!["CACHE.GETUSER", "1"],
        vec![
            "CACHE.SETSEARCH",
            "q",
            "1",
            "[1]",
            "FILTERS",
            r#"{"b":1,"a":2}"#,
        ],
        vec![
            "CACHE.GETSEARCH",
            "q",
            "1",
            "FILTERS",
            r#"{ "a": 2, "b": 1 }"#,
        ],
        vec!["CACHE.GETSEARCH", "q", "1", "FILTERS", "{"],
        vec!["CACHE.SETRAG", "q", "1", "ctx", r#"{"x":1}"#],
        vec!["CACHE.GETRAG", "q", "1", "ctx"],
        vec!["CACHE.SETTRANSLATION", "hello", "en", "ru", r#""привет""#],
        vec!["CACHE.GETTRANSLATION", "hello", "en", "ru"],
        vec!["CACHE.KEY", "search", "q", "1", "FILTERS", "{}"],
        vec!["CACHE.KEY", "ratelimit", "1", "ACTION", "search"],
        vec!["CACHE.KEY", "nope", "1"],
        vec!["RATELIMIT.CHECK", "u", "2", "60"],
        vec!["RATELIMIT.CHECK", "u", "2", "60"],
        vec!["RATELIMIT.CHECK", "u", "2", "60"],
        vec!["RATELIMIT.PEEK", "u", "2", "60"],
        vec!["RATELIMIT.CHECK", "u", "5", "60", "COST", "9"],
        vec!["RATELIMIT.CHECK", "u", "ACTION", "nope"],
        vec!["RATELIMIT.CHECK", "v", "ACTION", "search", "COST", "3"],
        vec!["RATELIMIT.INFO", "u"],
        vec!["RATELIMIT.INFO", "none"],
        vec!["RATELIMIT.RESET", "u"],
        vec!["RATELIMIT.RESET", "u"],
        vec!["CACHE.STATS"],
        vec!["CACHE.STATS", "RESET"],
        vec!["CACHE.STATS"],
    ]
}

/// Fields whose values depend on the clock or the allocator.
const CLOCK_FIELDS: &[&[u8]] = &[
    b"reset_time",
    b"reset_after_ms",
    b"retry_after",
    b"retry_after_ms",
    b"ttl_ms",
    b"timestamps",
    b"used_memory_human",
];

/// Blanks clock-dependent values (the element after such a field name).
fn normalize(r: &Resp) -> Resp {
    match r {
        Resp::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut blank = false;
            for it in items {
                if blank {
                    out.push(Resp::Nil);
                    blank = false;
                    continue;
                }
                blank = matches!(it, Resp::Bulk(b) if CLOCK_FIELDS.contains(&b.as_slice()));
                out.push(normalize(it));
            }
            Resp::Array(out)
        }
        Resp::Map(pairs) => Resp::Map(
            pairs
                .iter()
                .map(|(k, v)| {
                    let clock = matches!(k, Resp::Bulk(b) if CLOCK_FIELDS.contains(&b.as_slice()));
                    (k.clone(), if clock { Resp::Nil } else { normalize(v) })
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn fresh(c: &mut RawConn) {
    assert_eq!(call(c, &["FLUSHALL"]), ok());
    assert_eq!(call(c, &["CACHE.STATS", "RESET"]), ok());
}

fn run_direct(c: &mut RawConn, steps: &[Vec<&str>]) -> Vec<Resp> {
    fresh(c);
    steps.iter().map(|s| normalize(&call(c, s))).collect()
}

fn run_multi(c: &mut RawConn, steps: &[Vec<&str>]) -> Vec<Resp> {
    fresh(c);
    assert_eq!(call(c, &["MULTI"]), ok());
    for s in steps {
        assert_eq!(call(c, s), Resp::Simple(b"QUEUED".to_vec()), "{s:?}");
    }
    match call(c, &["EXEC"]) {
        Resp::Array(v) => v.iter().map(normalize).collect(),
        other => panic!("EXEC: {other:?}"),
    }
}

/// All steps in one script through redis.pcall: ARGV is `n arg1..argn` per step.
const SCRIPT: &str = "local out, i = {}, 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  out[#out + 1] = redis.pcall(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return out";

fn run_eval(c: &mut RawConn, steps: &[Vec<&str>]) -> Vec<Resp> {
    fresh(c);
    let counts: Vec<String> = steps.iter().map(|s| s.len().to_string()).collect();
    let mut args: Vec<&str> = vec!["EVAL", SCRIPT, "0"];
    for (s, n) in steps.iter().zip(&counts) {
        args.push(n);
        args.extend(s.iter());
    }
    match call(c, &args) {
        Resp::Array(v) => v.iter().map(normalize).collect(),
        other => panic!("EVAL: {other:?}"),
    }
}

/// The same steps through a Redis 7 function (FCALL).
fn run_fcall(c: &mut RawConn, steps: &[Vec<&str>]) -> Vec<Resp> {
    fresh(c);
    let library = format!(
        "#!lua name=cachekit_steps\nredis.register_function('steps', function(keys, ARGV)\n{SCRIPT}\nend)"
    );
    let loaded = call(c, &["FUNCTION", "LOAD", "REPLACE", &library]);
    assert_eq!(loaded, bulk("cachekit_steps"));
    let counts: Vec<String> = steps.iter().map(|s| s.len().to_string()).collect();
    let mut args: Vec<&str> = vec!["FCALL", "steps", "0"];
    for (s, n) in steps.iter().zip(&counts) {
        args.push(n);
        args.extend(s.iter());
    }
    match call(c, &args) {
        Resp::Array(v) => v.iter().map(normalize).collect(),
        other => panic!("FCALL: {other:?}"),
    }
}

#[test]
fn multi_and_lua_give_the_same_results_as_direct_calls() {
    for flavor in Flavor::ALL {
        let s = Server::start(flavor);
        let steps = scenario();
        for resp3 in [false, true] {
            let mut c = RawConn::connect(s.port);
            if resp3 {
                assert!(!call(&mut c, &["HELLO", "3"]).is_error());
            }
            let direct = run_direct(&mut c, &steps);
            // Sanity: the scenario exercises successes and errors.
            assert!(direct.iter().any(Resp::is_error));
            assert!(direct
                .iter()
                .any(|r| matches!(r, Resp::Map(_) | Resp::Array(_))));
            let multi = run_multi(&mut c, &steps);
            assert_eq!(multi.len(), steps.len());
            for ((step, d), m) in steps.iter().zip(&direct).zip(&multi) {
                assert_eq!(d, m, "{flavor:?} resp3={resp3}: MULTI differs for {step:?}");
            }
            if !resp3 {
                // Lua converts replies through its own types (RESP2 here): the
                // script's reply must equal the direct RESP2 reply.
                let lua = run_eval(&mut c, &steps);
                assert_eq!(lua.len(), steps.len());
                for ((step, d), l) in steps.iter().zip(&direct).zip(&lua) {
                    assert_eq!(d, l, "{flavor:?}: EVAL differs for {step:?}");
                }
                let function = run_fcall(&mut c, &steps);
                assert_eq!(function.len(), steps.len());
                for ((step, d), f) in steps.iter().zip(&direct).zip(&function) {
                    assert_eq!(d, f, "{flavor:?}: FCALL differs for {step:?}");
                }
            }
        }
        s.assert_log_clean();
    }
}

/// Commands of RESP arrays in an AOF file.
fn aof_commands(dir: &Path) -> Vec<Vec<Vec<u8>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("appendonlydir"))
        .expect("appendonlydir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let mut pos = 0;
        let line = |pos: &mut usize| -> Vec<u8> {
            let end = bytes[*pos..].windows(2).position(|w| w == b"\r\n").unwrap() + *pos;
            let l = bytes[*pos..end].to_vec();
            *pos = end + 2;
            l
        };
        while pos < bytes.len() {
            let head = line(&mut pos);
            assert_eq!(head[0], b'*', "AOF record starts with *");
            let n: usize = std::str::from_utf8(&head[1..]).unwrap().parse().unwrap();
            let mut cmd = Vec::new();
            for _ in 0..n {
                let len_line = line(&mut pos);
                let len: usize = std::str::from_utf8(&len_line[1..])
                    .unwrap()
                    .parse()
                    .unwrap();
                cmd.push(bytes[pos..pos + len].to_vec());
                pos += len + 2;
            }
            out.push(cmd);
        }
    }
    out
}

/// The MULTI ... EXEC blocks of an AOF, as upper-cased command names plus keys.
fn aof_blocks(cmds: &[Vec<Vec<u8>>]) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for c in cmds {
        let name = String::from_utf8_lossy(&c[0]).to_ascii_uppercase();
        match name.as_str() {
            "MULTI" => current = Some(Vec::new()),
            "EXEC" => blocks.push(current.take().expect("EXEC without MULTI")),
            _ => {
                if let Some(b) = current.as_mut() {
                    let key = c.get(1).map(|k| String::from_utf8_lossy(k).into_owned());
                    b.push(format!("{name} {}", key.unwrap_or_default()));
                }
            }
        }
    }
    blocks
}

#[test]
fn transactions_and_scripts_replicate_and_persist_as_a_whole() {
    for flavor in Flavor::ALL {
        let mut primary = Server::with(
            flavor,
            Options {
                server_args: vec![
                    "--appendonly".into(),
                    "yes".into(),
                    "--appendfsync".into(),
                    "always".into(),
                ],
                ..Options::default()
            },
        );
        let replica = Server::with(
            flavor,
            Options {
                server_args: vec![
                    "--replicaof".into(),
                    "127.0.0.1".into(),
                    primary.port.to_string(),
                ],
                ..Options::default()
            },
        );
        let mut p = RawConn::connect(primary.port);
        let mut r = RawConn::connect(replica.port);
        wait_until("replica link up", || {
            info_field(&mut r, "replication", "master_link_status") == "up"
        });

        let tx: Vec<Vec<&str>> = vec![
            vec!["CACHE.SETUSER", "1", r#"{"a":1}"#],
            vec!["CACHE.SETSESSION", "1", "{}", "TTL", "50"],
            vec!["CACHE.SETPERMISSIONS", "2", "[]"],
            vec!["RATELIMIT.CHECK", "tx", "3", "60"],
            vec!["RATELIMIT.CHECK", "tx", "3", "60", "COST", "2"],
            vec!["RATELIMIT.CHECK", "tx", "3", "60"],
            vec!["CACHE.INVALIDATEUSER", "1"],
            vec!["CACHE.SETSEARCH", "q", "2", "[1]"],
        ];
        assert_eq!(call(&mut p, &["MULTI"]), ok());
        for step in &tx {
            assert_eq!(call(&mut p, step), Resp::Simple(b"QUEUED".to_vec()));
        }
        let Resp::Array(results) = call(&mut p, &["EXEC"]) else {
            panic!("EXEC");
        };
        assert!(results.iter().all(|r| !r.is_error()), "{results:?}");

        let script = "redis.call('CACHE.SETUSER', '10', '{\"b\":2}')
redis.call('RATELIMIT.CHECK', 'lua', '2', '60')
redis.call('RATELIMIT.CHECK', 'lua', '2', '60')
redis.call('RATELIMIT.CHECK', 'lua', '2', '60')
redis.call('CACHE.SETTRANSLATION', 'hi', 'en', 'de', '\"hallo\"')
return redis.call('CACHE.INVALIDATEUSER', '10')";
        assert_eq!(call(&mut p, &["EVAL", script, "0"]), Resp::Int(1));
        assert_eq!(call(&mut p, &["WAIT", "1", "5000"]), Resp::Int(1));

        let want = keyspace(&mut p);
        assert!(want.len() >= 5, "{want:?}");
        assert_eq!(keyspace(&mut r), want, "{flavor:?}: replica differs");

        // The AOF holds effects only, each transaction and script in one
        // MULTI/EXEC block.
        let cmds = aof_commands(&primary.dir);
        let names: Vec<String> = cmds
            .iter()
            .map(|c| String::from_utf8_lossy(&c[0]).to_ascii_uppercase())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n == "RATELIMIT.CHECK" || n.starts_with("CACHE.") || n == "EVAL"),
            "{flavor:?}: commands that read the clock must not be replayed: {names:?}"
        );
        let blocks = aof_blocks(&cmds);
        let tx_block = blocks
            .iter()
            .find(|b| {
                b.iter()
                    .any(|c| c == "RATELIMIT.RECORD rate_limit:default:tx")
            })
            .expect("the transaction's block");
        let records = tx_block
            .iter()
            .filter(|c| c.starts_with("RATELIMIT.RECORD"))
            .count();
        assert_eq!(records, 2, "two admitted checks, one denied: {tx_block:?}");
        for want in [
            "SET user:1",
            "SET session:1",
            "SET user_permissions:2",
            "DEL user:1",
        ] {
            assert!(
                tx_block.iter().any(|c| c == want),
                "{flavor:?}: {want} not in the transaction's block {tx_block:?}"
            );
        }
        let lua_block = blocks
            .iter()
            .find(|b| {
                b.iter()
                    .any(|c| c == "RATELIMIT.RECORD rate_limit:default:lua")
            })
            .expect("the script's block");
        assert!(
            lua_block.iter().any(|c| c == "SET user:10"),
            "{lua_block:?}"
        );
        assert!(
            lua_block.iter().any(|c| c == "DEL user:10"),
            "{lua_block:?}"
        );

        // Replaying the AOF gives the same state.
        drop(p);
        primary.stop();
        let restarted = Server::with(
            flavor,
            Options {
                dir: Some(primary.dir.clone()),
                server_args: vec!["--appendonly".into(), "yes".into()],
                ..Options::default()
            },
        );
        let mut p2 = RawConn::connect(restarted.port);
        wait_until("AOF loaded", || {
            info_field(&mut p2, "persistence", "loading") == "0"
        });
        assert_eq!(keyspace(&mut p2), want, "{flavor:?}: AOF replay differs");
        restarted.assert_log_clean();
        replica.assert_log_clean();
    }
}

// ------------------------------------------------------- maxmemory

#[test]
fn maxmemory_noeviction_refuses_writes_and_serves_reads() {
    for flavor in Flavor::ALL {
        let s = Server::start(flavor);
        let mut c = RawConn::connect(s.port);
        assert_eq!(call(&mut c, &["CACHE.SETUSER", "1", r#"{"a":1}"#]), ok());
        assert_eq!(call(&mut c, &["CACHE.SETSESSION", "1", "{}"]), ok());
        assert_eq!(call(&mut c, &["CACHE.SETSEARCH", "q", "1", "[1]"]), ok());
        assert!(!call(&mut c, &["RATELIMIT.CHECK", "1", "5", "60"]).is_error());
        let before = keyspace(&mut c);
        let ratelimit = |c: &mut RawConn| {
            let stats = call(c, &["CACHE.STATS"]).flat();
            let at = stats.iter().position(|f| f == "ratelimit").unwrap();
            stats[at..at + 5].to_vec()
        };
        let counted_before = ratelimit(&mut c);
        assert_eq!(
            call(&mut c, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]),
            ok()
        );
        assert_eq!(call(&mut c, &["CONFIG", "SET", "maxmemory", "1"]), ok());

        let writes: Vec<Vec<&str>> = vec![
            vec!["CACHE.SETUSER", "1", "{}"],
            vec!["CACHE.SETUSER", "2", "{}"],
            vec!["CACHE.SETPERMISSIONS", "1", "[]"],
            vec!["CACHE.SETSESSION", "1", r#"{"new":1}"#],
            vec!["CACHE.SETSEARCH", "q", "1", "[2]"],
            vec!["CACHE.SETRAG", "q", "1", "h", "{}"],
            vec!["CACHE.SETTRANSLATION", "t", "en", "ru", "{}"],
            vec!["RATELIMIT.CHECK", "1", "5", "60"],
            vec!["RATELIMIT.CHECK", "2", "5", "60"],
        ];
        for w in &writes {
            expect_error(&call(&mut c, w), "OOM");
            // From a script too.
            let mut args = vec!["EVAL", "return redis.pcall(unpack(ARGV))", "0"];
            args.extend(w.iter());
            expect_error(&call(&mut c, &args), "OOM");
            // And in a transaction: refused when queued, so EXEC aborts.
            assert_eq!(call(&mut c, &["MULTI"]), ok());
            expect_error(&call(&mut c, w), "OOM");
            expect_error(&call(&mut c, &["EXEC"]), "EXECABORT");
        }
        assert_eq!(
            keyspace(&mut c),
            before,
            "{flavor:?}: a refused write changed data"
        );
        assert_eq!(
            ratelimit(&mut c),
            counted_before,
            "refused checks were counted"
        );

        // Reads still work, directly and from scripts.
        assert_eq!(call(&mut c, &["CACHE.GETUSER", "1"]), bulk(r#"{"a":1}"#));
        assert_eq!(call(&mut c, &["CACHE.GETSEARCH", "q", "1"]), bulk("[1]"));
        assert!(!call(&mut c, &["RATELIMIT.PEEK", "1", "5", "60"]).is_error());
        assert!(!call(&mut c, &["RATELIMIT.INFO", "1"]).is_error());
        assert!(!call(&mut c, &["CACHE.STATS"]).is_error());
        assert!(!call(&mut c, &["CACHE.KEY", "user", "1"]).is_error());
        assert_eq!(
            call(
                &mut c,
                &["EVAL", "return redis.call('CACHE.GETUSER', '1')", "0"]
            ),
            bulk(r#"{"a":1}"#)
        );
        // Deleting frees memory, so it is allowed, as DEL is.
        assert_eq!(call(&mut c, &["RATELIMIT.RESET", "1"]), Resp::Int(1));
        assert_eq!(call(&mut c, &["CACHE.INVALIDATEUSER", "1"]), Resp::Int(2));

        assert_eq!(call(&mut c, &["CONFIG", "SET", "maxmemory", "0"]), ok());
        assert_eq!(call(&mut c, &["CACHE.SETUSER", "1", "{}"]), ok());
        s.assert_log_clean();
    }
}

// ------------------------------------------- keyspace notifications

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

// --------------------------------------------------- MODULE UNLOAD

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

// ------------------------------------------------- calls from modules

/// `tests/support/caller_module.c` built with the system C compiler (the
/// one that links Rust code) into the target directory, once per run.
fn caller_module() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = root.join("target/test-support");
        std::fs::create_dir_all(&out).unwrap();
        let so = out.join("caller_module.so");
        let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-O1", "-fPIC", "-shared", "-o"])
            .arg(&so)
            .arg(root.join("tests/support/caller_module.c"))
            .status()
            .expect("run the C compiler for the caller test module");
        assert!(status.success(), "building the caller test module failed");
        so
    })
}

/// A keyspace-event subscriber may write from its callback (Redis 7.0
/// allows it): one that deletes the limiter on its `ratelimit` event must
/// find it fully written, and the check must end well.
#[test]
fn a_keyspace_subscriber_may_delete_a_limiter_from_its_callback() {
    for flavor in Flavor::ALL {
        let module = common::module_path();
        let caller = caller_module();
        let s = server_with_module(
            flavor,
            &module,
            &[
                "--loadmodule",
                caller.to_str().unwrap(),
                "delete-on-ratelimit",
            ],
        );
        let mut c = RawConn::connect(s.port);
        for args in [
            vec!["RATELIMIT.CHECK", "u1", "5", "10"],
            vec!["RATELIMIT.CHECK", "u1", "5", "10"],
            vec![
                "RATELIMIT.RECORD",
                "rate_limit:default:u2",
                "1000",
                "5",
                "10000",
                "1",
            ],
        ] {
            let r = call(&mut c, &args);
            assert!(!matches!(r, Resp::Error(_)), "{flavor:?} {args:?}: {r:?}");
        }
        for key in ["rate_limit:default:u1", "rate_limit:default:u2"] {
            assert_eq!(call(&mut c, &["EXISTS", key]), Resp::Int(0), "{flavor:?}");
        }
        assert_eq!(call(&mut c, &["PING"]), Resp::Simple(b"PONG".to_vec()));
    }
}

/// A load that fails (here: another module owns `cache.key`) must leave
/// nothing of the module behind: Redis 7.0 keeps the server-event listeners
/// of a failed module, and calling one after the library is gone crashes.
#[test]
fn a_failed_load_leaves_no_listener_behind() {
    let module = common::module_path();
    let caller = caller_module();
    for flavor in Flavor::ALL {
        let s = Server::with(
            flavor,
            Options {
                load_module: false,
                server_args: vec![
                    "--enable-module-command".into(),
                    "yes".into(),
                    "--loadmodule".into(),
                    caller.display().to_string(),
                    "take-cache-key".into(),
                ],
                ..Options::default()
            },
        );
        let mut c = RawConn::connect(s.port);
        let r = call(&mut c, &["MODULE", "LOAD", module.to_str().unwrap()]);
        assert!(matches!(r, Resp::Error(_)), "{flavor:?}: {r:?}");
        assert!(
            s.log().contains("could not create command cache.key"),
            "{flavor:?}: {}",
            s.log()
        );
        // A role change fires the replication-role event.
        assert_eq!(call(&mut c, &["REPLICAOF", "127.0.0.1", "1"]), ok());
        assert_eq!(call(&mut c, &["REPLICAOF", "NO", "ONE"]), ok());
        assert_eq!(call(&mut c, &["PING"]), Resp::Simple(b"PONG".to_vec()));
    }
}

/// Another module may call the commands through RM_Call: its client has no
/// connection, and once Redis recycles it, no user either (it runs as
/// root). Such calls run with the calling module's authority, as Redis runs
/// them; they must work, repeatedly, also inside a script.
#[test]
fn other_modules_may_call_the_commands() {
    for flavor in Flavor::ALL {
        let module = common::module_path();
        let caller = caller_module();
        let s = server_with_module(flavor, &module, &["--loadmodule", caller.to_str().unwrap()]);
        let mut admin = RawConn::connect(s.port);
        acl_user(&mut admin, "sess", &["~session:*", "+caller.call"]);
        let value = r#"{"from":"module"}"#;
        assert_eq!(
            call(
                &mut admin,
                &["CALLER.CALL", "-", "CACHE.SETUSER", "1", value]
            ),
            ok()
        );
        for _ in 0..3 {
            assert_eq!(
                call(&mut admin, &["CALLER.CALL", "-", "CACHE.GETUSER", "1"]),
                bulk(value)
            );
            let Resp::Array(fields) = call(
                &mut admin,
                &["CALLER.CALL", "-", "RATELIMIT.CHECK", "m", "5", "60"],
            ) else {
                panic!("{flavor:?}: RATELIMIT.CHECK through RM_Call is not a map");
            };
            assert_eq!(fields.first(), Some(&bulk("allowed")));
        }
        // From a script, through a module called by a script, and from a
        // script a module runs (its client, and so the script's, has no user).
        let script = "return redis.call('CALLER.CALL', '-', 'CACHE.GETUSER', '1')";
        let direct = "return redis.call('CACHE.GETUSER', '1')";
        for _ in 0..2 {
            assert_eq!(call(&mut admin, &["EVAL", script, "0"]), bulk(value));
            assert_eq!(
                call(&mut admin, &["CALLER.CALL", "-", "EVAL", direct, "0"]),
                bulk(value)
            );
        }
        // With the C flag a module call runs as the calling user, and
        // without it as root, as Redis runs any command it calls.
        let mut c = login(&s, "sess");
        expect_error(
            &call(&mut c, &["CALLER.CALL", "C", "CACHE.GETUSER", "1"]),
            "NOPERM",
        );
        assert_eq!(
            call(&mut c, &["CALLER.CALL", "C", "CACHE.GETSESSION", "1"]),
            Resp::Nil
        );
        assert_eq!(
            call(&mut c, &["CALLER.CALL", "-", "CACHE.GETUSER", "1"]),
            bulk(value)
        );
        // A restricted user calling the module directly is still checked,
        // before and after module calls recycled their clients; its
        // scripts are checked as it, and what tells a script's client from
        // a module's adds nothing to ACL LOG.
        expect_error(&call(&mut c, &["CACHE.GETUSER", "1"]), "NOPERM");
        assert_eq!(call(&mut admin, &["ACL", "LOG", "RESET"]), ok());
        let own = "return redis.call('CACHE.GETSESSION', '1')";
        assert_eq!(call(&mut c, &["EVAL", own, "0"]), Resp::Nil);
        let theirs = "return redis.call('CACHE.GETUSER', '1')";
        expect_error(&call(&mut c, &["EVAL", theirs, "0"]), "NOPERM");
        let Resp::Array(log) = call(&mut admin, &["ACL", "LOG"]) else {
            panic!("ACL LOG");
        };
        assert_eq!(log.len(), 1, "{flavor:?}: one denial logged: {log:?}");
        // The probe that tells a script's client from a module's never runs
        // a command.
        let Resp::Bulk(stats) = call(&mut admin, &["INFO", "commandstats"]) else {
            panic!("INFO commandstats");
        };
        assert!(
            !String::from_utf8_lossy(&stats).contains("cmdstat_hello"),
            "{flavor:?}: HELLO ran"
        );
        // A connection that changes user is checked as the new one at once.
        let mut switching = RawConn::connect(s.port);
        assert_eq!(call(&mut switching, &["CACHE.GETUSER", "1"]), bulk(value));
        assert_eq!(call(&mut switching, &["AUTH", "sess", "pw"]), ok());
        expect_error(&call(&mut switching, &["CACHE.GETUSER", "1"]), "NOPERM");
        assert_eq!(call(&mut switching, &["AUTH", "default", ""]), ok());
        assert_eq!(call(&mut switching, &["CACHE.GETUSER", "1"]), bulk(value));
        assert_eq!(call(&mut admin, &["PING"]), Resp::Simple(b"PONG".to_vec()));
        s.assert_log_clean();
    }
}

// --------------------------------------------------------- panics

/// The module built with `--features panic-test` (CACHEKIT.DEBUGPANIC), in
/// its own target directory so that it never replaces the release library
/// the other tests load; `CACHEKIT_PANIC_MODULE` may name a prebuilt one.
/// The dev profile compiles the same code in about half the time of a fresh
/// release build with fat LTO; the panic guard works the same (panic=unwind).
fn panic_module() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Ok(p) = std::env::var("CACHEKIT_PANIC_MODULE") {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = root.join("target/panic-test");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let started = Instant::now();
        let status = Command::new(cargo)
            .current_dir(root)
            .args(["build", "--lib", "--features", "panic-test"])
            .arg("--target-dir")
            .arg(&target)
            .env("CARGO_PROFILE_DEV_DEBUG", "0")
            .status()
            .expect("run cargo build for the panic-test module");
        assert!(status.success(), "building the panic-test module failed");
        eprintln!("panic-test module built in {:?}", started.elapsed());
        target.join("debug/libcachekit.so")
    })
}

#[test]
fn the_normal_build_has_no_debug_command() {
    let so = std::fs::read(common::module_path()).unwrap();
    let needle = b"debugpanic";
    assert!(
        !so.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle)),
        "the release library contains the test-only command"
    );
    let s = Server::start(Flavor::Redis);
    let mut c = RawConn::connect(s.port);
    assert_eq!(
        call(&mut c, &["COMMAND", "INFO", "cachekit.debugpanic"]),
        Resp::Array(vec![Resp::Nil])
    );
    s.assert_log_clean();
}

#[test]
fn panics_become_error_replies_and_never_break_the_protocol() {
    let module = panic_module();
    for flavor in Flavor::ALL {
        let s = server_with_module(flavor, module, &[]);
        for resp3 in [false, true] {
            let mut c = RawConn::connect(s.port);
            if resp3 {
                assert!(!call(&mut c, &["HELLO", "3"]).is_error());
            }
            let internal = Resp::Error(b"ERR internal error".to_vec());
            // mode -> the one reply the client must get
            let cases: Vec<(&str, Resp)> = vec![
                ("before", internal.clone()),
                ("mid-map", internal.clone()),
                ("nested", internal.clone()),
                ("after", ok()),
                (
                    "error-mid",
                    Resp::Error(b"ERR deliberate error after a partial reply".to_vec()),
                ),
                ("short", internal.clone()),
                ("twice", ok()),
                ("none", internal.clone()),
            ];
            for (mode, want) in &cases {
                assert_eq!(
                    &call(&mut c, &["CACHEKIT.DEBUGPANIC", mode]),
                    want,
                    "{flavor:?} resp3={resp3} mode {mode}"
                );
                // Exactly one reply: the next command gets its own answer.
                assert_eq!(call(&mut c, &["PING"]), Resp::Simple(b"PONG".to_vec()));
                assert!(c.nothing_pending(), "stray bytes after mode {mode}");
            }
            let good = call(&mut c, &["CACHEKIT.DEBUGPANIC", "ok"]);
            assert!(matches!(good, Resp::Map(_) | Resp::Array(_)), "{good:?}");

            // Inside MULTI/EXEC: the panic is one error in the EXEC array.
            assert_eq!(call(&mut c, &["MULTI"]), ok());
            for mode in ["mid-map", "ok", "before"] {
                assert_eq!(
                    call(&mut c, &["CACHEKIT.DEBUGPANIC", mode]),
                    Resp::Simple(b"QUEUED".to_vec())
                );
            }
            let Resp::Array(results) = call(&mut c, &["EXEC"]) else {
                panic!("EXEC");
            };
            assert_eq!(results.len(), 3);
            assert_eq!(results[0], internal);
            assert!(matches!(results[1], Resp::Map(_) | Resp::Array(_)));
            assert_eq!(results[2], internal);

            // From Lua: redis.pcall sees the error, the script goes on.
            let r = call(
                &mut c,
                &[
                    "EVAL",
                    "local e = redis.pcall('CACHEKIT.DEBUGPANIC', 'mid-map') return {e['err'], redis.call('PING')}",
                    "0",
                ],
            );
            assert_eq!(
                r,
                Resp::Array(vec![
                    bulk("ERR internal error"),
                    Resp::Simple(b"PONG".to_vec())
                ])
            );
        }
        // The server lives on; each panic left its reason in the log, and
        // nothing crashed.
        let mut c = RawConn::connect(s.port);
        assert_eq!(call(&mut c, &["SET", "k", "v"]), ok());
        assert_eq!(call(&mut c, &["GET", "k"]), bulk("v"));
        let log = s.log();
        assert!(log.contains("cachekit: panic:"), "{log}");
        assert!(
            log.contains("deliberate panic in the middle of a map"),
            "{log}"
        );
        assert!(
            log.contains("internal error (panic) in CACHEKIT.DEBUGPANIC"),
            "{log}"
        );
        assert!(!log.contains("crashed by signal"), "{log}");
        assert!(!log.contains("Guru Meditation"), "{log}");
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
