//! Leak check against real servers: a few hundred thousand mixed operations
//! (successes, misses, every kind of error, ACL refusals, MULTI and Lua, RESP2
//! and RESP3), then everything is deleted and the server's `used_memory`
//! must be back near where it started. The module allocates through Redis,
//! so a leak of even one small allocation per command shows. Bounded in
//! count and time.

mod common;
mod resp;

use std::time::{Duration, Instant};

use common::{Flavor, Server};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use resp::{encode, RawConn, Resp};

const IDS: u64 = 20_000;

fn call(c: &mut RawConn, args: &[&str]) -> Resp {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.call(&args).expect("reply")
}

fn info_int(c: &mut RawConn, field: &str) -> i64 {
    let Resp::Bulk(text) = call(c, &["INFO", "all"]) else {
        panic!("INFO");
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO"))
}

/// One random operation; returns how many replies it produces.
fn operation(rng: &mut StdRng, out: &mut Vec<u8>) -> usize {
    let id = rng.gen_range(0..IDS).to_string();
    let n = rng.gen_range(0..1000).to_string();
    let user = format!(r#"{{"id":{id},"name":"user {n}","roles":["a","b"]}}"#);
    let filters = format!(r#"{{"dept":"d{n}","page":{}}}"#, rng.gen_range(0..5));
    let q = format!("query {}", rng.gen_range(0..50));
    let big = "x".repeat(rng.gen_range(0..2000));
    let args: Vec<String> = match rng.gen_range(0..37) {
        0 => vec!["CACHE.SETUSER".into(), id, user],
        1 => vec!["CACHE.GETUSER".into(), id],
        2 => vec![
            "CACHE.SETPERMISSIONS".into(),
            id,
            r#"["read","write"]"#.into(),
            "TTL".into(),
            "600".into(),
        ],
        3 => vec!["CACHE.GETPERMISSIONS".into(), id],
        4 => vec![
            "CACHE.SETSESSION".into(),
            id,
            format!(r#"{{"state":"{big}"}}"#),
        ],
        5 => vec!["CACHE.GETSESSION".into(), id],
        6 => vec!["CACHE.INVALIDATEUSER".into(), id],
        7 => vec![
            "CACHE.SETSEARCH".into(),
            q,
            id,
            "[1,2,3]".into(),
            "FILTERS".into(),
            filters,
        ],
        8 => vec!["CACHE.GETSEARCH".into(), q, id, "FILTERS".into(), filters],
        9 => vec![
            "CACHE.SETRAG".into(),
            q,
            id,
            n,
            format!(r#"{{"answer":"{big}"}}"#),
        ],
        10 => vec!["CACHE.GETRAG".into(), q, id, n],
        11 => vec![
            "CACHE.SETTRANSLATION".into(),
            q,
            "en".into(),
            "ru".into(),
            r#""перевод""#.into(),
        ],
        12 => vec!["CACHE.GETTRANSLATION".into(), q, "en".into(), "ru".into()],
        13..=15 => vec![
            "RATELIMIT.CHECK".into(),
            id,
            "50".into(),
            "60".into(),
            "COST".into(),
            rng.gen_range(1..5).to_string(),
        ],
        16 => vec![
            "RATELIMIT.CHECK".into(),
            id,
            "ACTION".into(),
            "search".into(),
        ],
        17 => vec!["RATELIMIT.PEEK".into(), id, "50".into(), "60".into()],
        18 => vec!["RATELIMIT.INFO".into(), id],
        19 => vec!["RATELIMIT.RESET".into(), id],
        20 => vec![
            "CACHE.KEY".into(),
            "search".into(),
            q,
            id,
            "FILTERS".into(),
            filters,
        ],
        21 => vec!["CACHE.STATS".into()],
        // Errors of every kind.
        22 => vec!["CACHE.SETUSER".into(), id, "{not json".into()],
        23 => vec!["CACHE.GETUSER".into(), "wrongtype".into()],
        24 => vec![
            "RATELIMIT.CHECK".into(),
            "corrupt".into(),
            "5".into(),
            "60".into(),
        ],
        25 => vec!["RATELIMIT.CHECK".into(), id, "ACTION".into(), "nope".into()],
        26 => vec!["CACHE.SETUSER".into(), id],
        27 => vec![
            "CACHE.GETSEARCH".into(),
            q,
            id,
            "FILTERS".into(),
            "[1".into(),
        ],
        28 => vec![
            "CACHE.SETUSER".into(),
            id,
            "{}".into(),
            "TTL".into(),
            "-5".into(),
        ],
        29 => vec!["CACHE.SETUSERROLES".into(), id, user],
        30 => vec!["CACHE.GETUSERROLES".into(), id],
        31 => vec!["CACHE.SETDOCUMENTS".into(), n, "all".into(), "[1,2]".into()],
        32 => vec!["CACHE.GETDOCUMENTS".into(), n, "all".into()],
        33 => {
            let dims = rng.gen_range(1..300);
            let v: Vec<String> = (0..dims).map(|i| format!("{}.5", i)).collect();
            vec![
                "CACHE.SETEMBEDDING".into(),
                q,
                id,
                format!("[{}]", v.join(",")),
            ]
        }
        34 => vec![
            "CACHE.GETEMBEDDING".into(),
            q,
            id,
            "FORMAT".into(),
            "JSON".into(),
        ],
        35 => vec!["CACHE.SETEMBEDDING".into(), q, id, "[1e39]".into()],
        _ => vec!["CACHE.KEY".into(), "nope".into(), id],
    };
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    match rng.gen_range(0..40) {
        0 => {
            out.extend(encode(&[b"MULTI"]));
            out.extend(encode(&refs));
            out.extend(encode(&[b"EXEC"]));
            3
        }
        1 => {
            let mut eval: Vec<&[u8]> = vec![b"EVAL", b"return redis.pcall(unpack(ARGV))", b"0"];
            eval.extend(refs);
            out.extend(encode(&eval));
            1
        }
        _ => {
            out.extend(encode(&refs));
            1
        }
    }
}

struct Load {
    conns: Vec<RawConn>,
}

impl Load {
    fn open(s: &Server) -> Load {
        let plain = RawConn::connect(s.port);
        let mut resp3 = RawConn::connect(s.port);
        assert!(!call(&mut resp3, &["HELLO", "3"]).is_error());
        // A user limited to sessions: most commands end in NOPERM.
        let mut limited = RawConn::connect(s.port);
        assert_eq!(
            call(&mut limited, &["AUTH", "sess", "pw"]),
            Resp::Simple(b"OK".to_vec())
        );
        Load {
            conns: vec![plain, resp3, limited],
        }
    }

    /// Runs `ops` operations in pipelined batches; returns how many ran.
    fn run(&mut self, rng: &mut StdRng, ops: usize, budget: Duration) -> usize {
        let started = Instant::now();
        let mut done = 0;
        while done < ops && started.elapsed() < budget {
            let which = match rng.gen_range(0..10) {
                0..=5 => 0,
                6..=8 => 1,
                _ => 2,
            };
            let conn = &mut self.conns[which];
            let mut wire = Vec::new();
            let mut expected = 0;
            let batch = 500.min(ops - done);
            for _ in 0..batch {
                expected += operation(rng, &mut wire);
            }
            conn.send_raw(&wire).expect("send");
            for _ in 0..expected {
                conn.read().expect("a well-formed reply");
            }
            done += batch;
        }
        done
    }
}

/// `used_memory` once only the measuring connection is left and the logs
/// that grow by themselves are empty.
fn settled_memory(m: &mut RawConn) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_int(m, "connected_clients") > 1 {
        assert!(Instant::now() < deadline, "load connections did not close");
        std::thread::sleep(Duration::from_millis(20));
    }
    for reset in [&["ACL", "LOG", "RESET"][..], &["SLOWLOG", "RESET"]] {
        assert_eq!(call(m, reset), Resp::Simple(b"OK".to_vec()));
    }
    info_int(m, "used_memory")
}

fn delete_everything(m: &mut RawConn) {
    // Through the module first (its delete paths), then the rest.
    let mut wire = Vec::new();
    for id in 0..IDS {
        let id = id.to_string();
        wire.extend(encode(&[b"CACHE.INVALIDATEUSER", id.as_bytes()]));
        wire.extend(encode(&[b"RATELIMIT.RESET", id.as_bytes()]));
    }
    m.send_raw(&wire).unwrap();
    for _ in 0..2 * IDS {
        assert!(!m.read().unwrap().is_error());
    }
    assert_eq!(call(m, &["FLUSHALL", "SYNC"]), Resp::Simple(b"OK".to_vec()));
    assert_eq!(call(m, &["DBSIZE"]), Resp::Int(0));
}

fn prepare(m: &mut RawConn) {
    assert_eq!(
        call(
            m,
            &["ACL", "SETUSER", "sess", "on", ">pw", "~session:*", "+@all"]
        ),
        Resp::Simple(b"OK".to_vec())
    );
    assert_eq!(call(m, &["LPUSH", "user:wrongtype", "x"]), Resp::Int(1));
    assert_eq!(
        call(m, &["SET", "rate_limit:default:corrupt", "\u{1}garbage"]),
        Resp::Simple(b"OK".to_vec())
    );
}

fn check_server(flavor: Flavor, ops: usize) {
    let s = Server::start(flavor);
    let mut m = RawConn::connect(s.port);
    let mut rng = StdRng::seed_from_u64(7);
    prepare(&mut m);

    // Warm up: every code path once, so that lazily created structures
    // (script cache, error statistics, reply buffers) exist before the baseline.
    let mut load = Load::open(&s);
    load.run(&mut rng, 20_000, Duration::from_secs(60));
    drop(load);
    delete_everything(&mut m);
    prepare(&mut m);
    let baseline = settled_memory(&mut m);

    let started = Instant::now();
    let mut load = Load::open(&s);
    let done = load.run(&mut rng, ops, Duration::from_secs(90));
    drop(load);
    let peak_keys = call(&mut m, &["DBSIZE"]);
    delete_everything(&mut m);
    prepare(&mut m);
    let after = settled_memory(&mut m);
    eprintln!(
        "{flavor:?}: {done} operations in {:?} ({peak_keys:?} keys at the end); used_memory {baseline} -> {after} ({:+} bytes)",
        started.elapsed(),
        after - baseline
    );
    assert!(
        done >= ops.min(100_000),
        "too few operations in the time budget: {done}"
    );
    assert!(
        after - baseline < 64 * 1024,
        "{flavor:?}: used_memory grew by {} bytes over {done} operations",
        after - baseline
    );
    s.assert_log_clean();
}

#[test]
fn memory_returns_to_the_baseline_after_many_operations() {
    let ops = std::env::var("CACHEKIT_LEAK_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    for flavor in Flavor::ALL {
        check_server(flavor, ops);
    }
}
