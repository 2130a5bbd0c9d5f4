//! cachekit on a real Redis Cluster (and Valkey cluster): three masters formed
//! with `redis-cli --cluster create`, every command driven through cluster
//! clients for hundreds of ids, every key checked on the node owning its slot.

mod cluster_support;
mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cluster_support::{all_masters, as_map, build, int, routing_arg, run, text};
use cluster_support::{node, try_node, Cluster};
use common::{module_path, Flavor, Options, Server};
use rand::{rngs::StdRng, Rng, SeedableRng};
use redis::cluster::ClusterConnection;
use redis::Value;

/// The cluster test's own budget; it normally needs a fraction of it.
const BUDGET: Duration = Duration::from_secs(90);
const IDS: usize = 300;

const PLAIN_REFUSED: &str = "key-style plain is refused in cluster mode";

struct Case {
    n: usize,
    id: Vec<u8>,
    query: String,
    text: String,
    filters: String,
    /// The same object as `filters`, spelled differently.
    filters_reordered: String,
}

impl Case {
    fn utf8(&self) -> bool {
        std::str::from_utf8(&self.id).is_ok()
    }
    fn ctx(&self) -> String {
        format!("ctx{}", self.n)
    }
    fn user(&self) -> String {
        format!(r#"{{"id":{},"name":"user {}"}}"#, self.n, self.n)
    }
    fn perms(&self) -> String {
        format!(r#"["read","n{}"]"#, self.n)
    }
    fn session(&self) -> String {
        format!(r#"{{"state":"s{}"}}"#, self.n)
    }
    fn search(&self) -> String {
        format!(r#"[{{"doc":{}}}]"#, self.n)
    }
    fn rag(&self) -> String {
        format!(r#"{{"answer":"a{}"}}"#, self.n)
    }
    fn translation(&self) -> String {
        format!(r#""t{}""#, self.n)
    }
}

fn seed() -> u64 {
    std::env::var("CACHEKIT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

fn random_text(rng: &mut StdRng, alphabet: &[char], max: usize) -> String {
    let len = rng.gen_range(1..=max);
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
        .collect()
}

/// Hundreds of ids: numbers, printable ids with `{`, Unicode, and odd bytes
/// (NUL, CR/LF, bytes that are not UTF-8). None holds `}`: those are refused.
fn cases(rng: &mut StdRng) -> Vec<Case> {
    let printable: Vec<char> = "abcXYZ019-_:{ {.@".chars().collect();
    let unicode: Vec<char> = "яжß😀漢{ :1".chars().collect();
    let free_text: Vec<char> = "как оформить отпуск {}{}x 42😀".chars().collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    while out.len() < IDS {
        let n = out.len();
        let id: Vec<u8> = match n % 5 {
            0 | 1 => (n * 7919 + 1).to_string().into_bytes(),
            2 => random_text(rng, &printable, 16).into_bytes(),
            3 => random_text(rng, &unicode, 8).into_bytes(),
            _ => {
                let len = rng.gen_range(1..=12);
                (0..len)
                    .map(|_| loop {
                        let b: u8 = match rng.gen_range(0..4) {
                            0 => b"{\0\r\n "[rng.gen_range(0..5)],
                            _ => rng.gen(),
                        };
                        if b != b'}' {
                            break b;
                        }
                    })
                    .collect()
            }
        };
        if !seen.insert(id.clone()) {
            continue;
        }
        let query = random_text(rng, &free_text, 24);
        out.push(Case {
            n,
            id,
            query,
            // Unique per case; braces on purpose: any text is allowed.
            text: format!("{} {{{}}}", random_text(rng, &free_text, 20), n),
            filters: format!(r#"{{"b":{n},"a":"x{{"}}"#),
            filters_reordered: format!(r#"{{ "a" : "x{{", "b" : {n} }}"#),
        });
    }
    out
}

fn ok(v: redis::RedisResult<Value>, what: &str) -> Value {
    match v {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn bulk(v: redis::RedisResult<Value>, what: &str) -> String {
    text(&ok(v, what))
}

/// The CACHE.KEY arguments and routing argument of every key a case writes.
fn key_queries(c: &Case) -> Vec<(Vec<Vec<u8>>, Vec<u8>)> {
    let id = c.id.clone();
    let mut out: Vec<(Vec<Vec<u8>>, Vec<u8>)> = Vec::new();
    for kind in ["user", "permissions", "session", "user_with_roles"] {
        out.push((vec![kind.into(), id.clone()], id.clone()));
    }
    if c.utf8() {
        out.push((
            vec![
                "search".into(),
                c.query.clone().into(),
                id.clone(),
                "FILTERS".into(),
                c.filters.clone().into(),
            ],
            id.clone(),
        ));
        out.push((
            vec![
                "rag".into(),
                c.query.clone().into(),
                id.clone(),
                c.ctx().into(),
            ],
            id.clone(),
        ));
        out.push((
            vec!["documents".into(), "10".into(), id.clone()],
            id.clone(),
        ));
    }
    out.push((
        vec!["embedding".into(), c.text.clone().into(), "m".into()],
        c.text.clone().into(),
    ));
    out.push((
        vec![
            "translation".into(),
            c.text.clone().into(),
            "en".into(),
            "ru".into(),
        ],
        c.text.clone().into(),
    ));
    for action in ["search", "default"] {
        out.push((
            vec![
                "ratelimit".into(),
                id.clone(),
                "ACTION".into(),
                action.into(),
            ],
            id.clone(),
        ));
    }
    out
}

fn cache_key(cc: &mut ClusterConnection, q: &[Vec<u8>]) -> Vec<u8> {
    let mut args: Vec<&[u8]> = vec![b"CACHE.KEY"];
    args.extend(q.iter().map(|a| a.as_slice()));
    match ok(run(cc, &args), "CACHE.KEY") {
        Value::BulkString(k) => k,
        other => panic!("CACHE.KEY: {other:?}"),
    }
}

/// Limiter decisions of `calls` identical checks: (allowed, current_count) each.
fn checks(cc: &mut ClusterConnection, args: &[&[u8]], calls: usize) -> Vec<(i64, i64)> {
    (0..calls)
        .map(|_| {
            let m = as_map(&ok(run(cc, args), "RATELIMIT.CHECK"));
            (int(&m, "allowed"), int(&m, "current_count"))
        })
        .collect()
}

#[derive(Default)]
struct Expected {
    hits: i64,
    misses: i64,
    allowed: i64,
    denied: i64,
    keys: u64,
}

/// Writes everything one case has through the cluster client and reads it back.
fn write_and_read(cc: &mut ClusterConnection, c: &Case, exp: &mut Expected) {
    let id = c.id.as_slice();
    let (user, perms, session) = (c.user(), c.perms(), c.session());
    for (set, get, value) in [
        ("CACHE.SETUSER", "CACHE.GETUSER", &user),
        ("CACHE.SETPERMISSIONS", "CACHE.GETPERMISSIONS", &perms),
        ("CACHE.SETSESSION", "CACHE.GETSESSION", &session),
        ("CACHE.SETUSERROLES", "CACHE.GETUSERROLES", &user),
    ] {
        assert_eq!(
            bulk(run(cc, &[set.as_bytes(), id, value.as_bytes()]), set),
            "OK"
        );
        assert_eq!(bulk(run(cc, &[get.as_bytes(), id]), get), *value);
        exp.hits += 1;
    }
    exp.keys += 4;

    // Popular documents route by category (here the case's id); embeddings
    // by their text.
    let docs = c.search();
    let set_docs: [&[u8]; 4] = [b"CACHE.SETDOCUMENTS", b"10", id, docs.as_bytes()];
    let get_docs: [&[u8]; 3] = [b"CACHE.GETDOCUMENTS", b"10", id];
    if c.utf8() {
        assert_eq!(bulk(run(cc, &set_docs), "SETDOCUMENTS"), "OK");
        assert_eq!(bulk(run(cc, &get_docs), "GETDOCUMENTS"), docs);
        exp.hits += 1;
        exp.keys += 1;
    } else {
        for args in [&set_docs[..], &get_docs[..]] {
            let e = run(cc, args).expect_err("non-UTF-8 category");
            assert_eq!(e.code(), Some("ERR"), "{e}");
            assert!(e.to_string().contains("UTF-8"), "{e}");
        }
    }
    let t = c.text.as_bytes();
    let vector = format!("[{}, -0.5, 1e-7]", c.n);
    assert_eq!(
        bulk(
            run(cc, &[b"CACHE.SETEMBEDDING", t, b"m", vector.as_bytes()]),
            "SETEMBEDDING"
        ),
        "OK"
    );
    let expected: Vec<u8> = [c.n as f32, -0.5, 1e-7]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    match ok(run(cc, &[b"CACHE.GETEMBEDDING", t, b"m"]), "GETEMBEDDING") {
        Value::BulkString(b) => assert_eq!(b, expected),
        other => panic!("GETEMBEDDING: {other:?}"),
    }
    exp.hits += 1;
    exp.keys += 1;

    let (search, rag) = (c.search(), c.rag());
    let q = c.query.as_bytes();
    let ctx = c.ctx();
    let set_search: [&[u8]; 6] = [
        b"CACHE.SETSEARCH",
        q,
        id,
        search.as_bytes(),
        b"FILTERS",
        c.filters.as_bytes(),
    ];
    let get_search: [&[u8]; 5] = [
        b"CACHE.GETSEARCH",
        q,
        id,
        b"FILTERS",
        c.filters_reordered.as_bytes(),
    ];
    let set_rag: [&[u8]; 5] = [b"CACHE.SETRAG", q, id, ctx.as_bytes(), rag.as_bytes()];
    let get_rag: [&[u8]; 4] = [b"CACHE.GETRAG", q, id, ctx.as_bytes()];
    if c.utf8() {
        assert_eq!(bulk(run(cc, &set_search), "SETSEARCH"), "OK");
        assert_eq!(bulk(run(cc, &get_search), "GETSEARCH"), search);
        assert_eq!(bulk(run(cc, &set_rag), "SETRAG"), "OK");
        assert_eq!(bulk(run(cc, &get_rag), "GETRAG"), rag);
        exp.hits += 2;
        exp.keys += 2;
    } else {
        // md5 is over UTF-8 text: a clear error, not a redirect.
        for args in [&set_search[..], &get_search[..], &set_rag[..], &get_rag[..]] {
            let e = run(cc, args).expect_err("non-UTF-8 user_id");
            assert_eq!(e.code(), Some("ERR"), "{e}");
            assert!(e.to_string().contains("UTF-8"), "{e}");
        }
    }

    let tr = c.translation();
    let t = c.text.as_bytes();
    assert_eq!(
        bulk(
            run(
                cc,
                &[b"CACHE.SETTRANSLATION", t, b"en", b"ru", tr.as_bytes()]
            ),
            "SETTRANSLATION"
        ),
        "OK"
    );
    assert_eq!(
        bulk(
            run(cc, &[b"CACHE.GETTRANSLATION", t, b"en", b"ru"]),
            "GETTRANSLATION"
        ),
        tr
    );
    exp.hits += 1;
    exp.keys += 1;

    // Limiter counts are exact: 5 of 7 admitted, then a policy limiter by cost.
    let d = checks(
        cc,
        &[b"RATELIMIT.CHECK", id, b"5", b"60", b"ACTION", b"search"],
        7,
    );
    assert_eq!(
        d,
        vec![(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (0, 5), (0, 5)]
    );
    let d = checks(cc, &[b"RATELIMIT.CHECK", id, b"COST", b"40"], 3);
    assert_eq!(d, vec![(1, 40), (1, 80), (0, 80)]);
    exp.allowed += 7;
    exp.denied += 3;
    exp.keys += 2;
    let peek = as_map(&ok(
        run(
            cc,
            &[b"RATELIMIT.PEEK", id, b"5", b"60", b"ACTION", b"search"],
        ),
        "PEEK",
    ));
    assert_eq!((int(&peek, "allowed"), int(&peek, "current_count")), (0, 5));
    let info = as_map(&ok(
        run(cc, &[b"RATELIMIT.INFO", id, b"ACTION", b"search"]),
        "INFO",
    ));
    assert_eq!(int(&info, "current_requests"), 5);
    match info.get("timestamps") {
        Some(Value::Array(ts)) => assert_eq!(ts.len(), 5),
        other => panic!("timestamps: {other:?}"),
    }
}

/// Every key of the case is on exactly the node owning its slot, and that
/// slot is the slot of the argument the command routes by.
fn check_placement(
    cl: &Cluster,
    cc: &mut ClusterConnection,
    conns: &mut [redis::Connection],
    c: &Case,
) {
    for (q, route) in key_queries(c) {
        let key = cache_key(cc, &q);
        let slot = cl.keyslot(&mut conns[0], &key);
        assert_eq!(
            slot,
            cl.keyslot(&mut conns[0], &route),
            "key {:?} of id {:?}",
            String::from_utf8_lossy(&key),
            String::from_utf8_lossy(&c.id)
        );
        // The client's slot function agrees with the server's.
        assert_eq!(redis::cluster_routing::get_slot(&route), slot);
        cl.assert_only_on_owner(conns, &key, slot);
    }
}

/// No key anywhere sits on a node that does not own its slot.
fn check_every_key_is_home(cl: &Cluster, conns: &mut [redis::Connection], expected: u64) {
    let keys = cl.all_keys();
    assert_eq!(keys.len() as u64, expected, "keys in the cluster");
    for (node, key) in keys {
        let slot = cl.keyslot(&mut conns[node], &key);
        assert_eq!(
            cl.owner(slot),
            node,
            "{:?} is on a node that does not own slot {slot}",
            String::from_utf8_lossy(&key)
        );
    }
}

fn invalidate(cc: &mut ClusterConnection, c: &Case, exp: &mut Expected) {
    let id = c.id.as_slice();
    let n = ok(run(cc, &[b"CACHE.INVALIDATEUSER", id]), "INVALIDATEUSER");
    assert_eq!(n, Value::Int(4), "{:?}", String::from_utf8_lossy(id));
    for get in ["CACHE.GETUSER", "CACHE.GETSESSION"] {
        assert_eq!(ok(run(cc, &[get.as_bytes(), id]), get), Value::Nil);
        exp.misses += 1;
    }
    let reset: [&[u8]; 4] = [b"RATELIMIT.RESET", id, b"ACTION", b"search"];
    assert_eq!(ok(run(cc, &reset), "RESET"), Value::Int(1));
    assert_eq!(ok(run(cc, &reset), "RESET"), Value::Int(0));
    exp.keys -= 5;
}

/// Ids with `}` cannot be tagged: every command refuses them, writing nothing.
fn untaggable_ids_are_refused(cl: &Cluster, cc: &mut ClusterConnection) {
    let before = cl.total_keys();
    for id in ["4}2", "}", "{x}", "a}{b", "}}}"] {
        let id = id.as_bytes();
        let all: Vec<Vec<&[u8]>> = vec![
            vec![b"CACHE.SETUSER", id, b"{}"],
            vec![b"CACHE.GETUSER", id],
            vec![b"CACHE.SETPERMISSIONS", id, b"[]"],
            vec![b"CACHE.GETPERMISSIONS", id],
            vec![b"CACHE.SETSESSION", id, b"{}"],
            vec![b"CACHE.GETSESSION", id],
            vec![b"CACHE.INVALIDATEUSER", id],
            vec![b"CACHE.SETSEARCH", b"q", id, b"[]"],
            vec![b"CACHE.GETSEARCH", b"q", id],
            vec![b"CACHE.SETRAG", b"q", id, b"c", b"{}"],
            vec![b"CACHE.GETRAG", b"q", id, b"c"],
            vec![b"CACHE.SETUSERROLES", id, b"{}"],
            vec![b"CACHE.GETUSERROLES", id],
            vec![b"CACHE.SETDOCUMENTS", b"5", id, b"[]"],
            vec![b"CACHE.GETDOCUMENTS", b"5", id],
            vec![b"RATELIMIT.CHECK", id, b"5", b"60"],
            vec![b"RATELIMIT.PEEK", id, b"5", b"60"],
            vec![b"RATELIMIT.INFO", id],
            vec![b"RATELIMIT.RESET", id],
            vec![b"CACHE.KEY", b"user", id],
        ];
        for args in all {
            let e = run(cc, &args).expect_err("an id with '}'");
            assert_eq!(e.code(), Some("ERR"), "{e}");
            assert!(e.to_string().contains("must not contain '}'"), "{e}");
        }
    }
    // An action before the tag must not open one.
    let e = run(
        cc,
        &[b"RATELIMIT.CHECK", b"42", b"5", b"60", b"ACTION", b"a{b"],
    )
    .expect_err("an action with '{'");
    assert!(e.to_string().contains("action must not contain '{'"), "{e}");
    assert_eq!(cl.total_keys(), before, "a refused command wrote a key");
}

/// A client that is not cluster-aware, on the wrong node, is redirected to
/// the owner of the routing argument's slot; the wrong node writes nothing.
fn wrong_node_gets_moved(cl: &Cluster, conns: &mut [redis::Connection], rng: &mut StdRng) {
    let before_keys = cl.total_keys();
    let before_moved = cl.errorstat("MOVED");
    let mut sent = 0;
    for n in 0..30 {
        let id = format!("wrong{n}{{{}", rng.gen::<u32>()).into_bytes();
        let text = format!("text {n} {}", rng.gen::<u32>()).into_bytes();
        let all: Vec<Vec<&[u8]>> = vec![
            vec![b"CACHE.SETUSER", &id, b"{}"],
            vec![b"CACHE.GETUSER", &id],
            vec![b"CACHE.SETPERMISSIONS", &id, b"[]"],
            vec![b"CACHE.GETPERMISSIONS", &id],
            vec![b"CACHE.SETSESSION", &id, b"{}"],
            vec![b"CACHE.GETSESSION", &id],
            vec![b"CACHE.INVALIDATEUSER", &id],
            vec![b"CACHE.SETSEARCH", b"some query", &id, b"[]"],
            vec![b"CACHE.GETSEARCH", b"some query", &id],
            vec![b"CACHE.SETRAG", b"q", &id, b"c", b"{}"],
            vec![b"CACHE.GETRAG", b"q", &id, b"c"],
            vec![b"CACHE.SETTRANSLATION", &text, b"en", b"ru", b"\"x\""],
            vec![b"CACHE.GETTRANSLATION", &text, b"en", b"ru"],
            vec![b"CACHE.SETUSERROLES", &id, b"{}"],
            vec![b"CACHE.GETUSERROLES", &id],
            vec![b"CACHE.SETDOCUMENTS", b"5", &id, b"[]"],
            vec![b"CACHE.GETDOCUMENTS", b"5", &id],
            vec![b"CACHE.SETEMBEDDING", &text, b"m", b"[1]"],
            vec![b"CACHE.GETEMBEDDING", &text, b"m", b"FORMAT", b"JSON"],
            vec![b"RATELIMIT.CHECK", &id, b"5", b"60"],
            vec![b"RATELIMIT.PEEK", &id, b"5", b"60"],
            vec![b"RATELIMIT.INFO", &id],
            vec![b"RATELIMIT.RESET", &id],
        ];
        for args in all {
            let name = String::from_utf8_lossy(args[0]).into_owned();
            let route = args[routing_arg(&name).expect("keyed command")];
            let slot = cl.keyslot(&mut conns[0], route);
            let owner = cl.owner(slot);
            let wrong = (owner + 1 + n % 2) % conns.len();
            let e = build(&args)
                .query::<Value>(&mut conns[wrong])
                .expect_err("a command on the wrong node");
            assert_eq!(e.code(), Some("MOVED"), "{name}: {e}");
            let (addr, moved_slot) = e.redirect_node().expect("MOVED names the owner");
            assert_eq!(moved_slot, slot, "{name}");
            assert_eq!(
                addr,
                format!("127.0.0.1:{}", cl.nodes[owner].port),
                "{name}"
            );
            sent += 1;
        }
    }
    assert_eq!(cl.total_keys(), before_keys, "a redirected command wrote");
    assert_eq!(cl.errorstat("MOVED") - before_moved, sent);
}

/// MULTI on one node: one user's commands are one atomic step; two users in
/// different slots are refused as a whole with CROSSSLOT.
fn transactions_stay_in_one_slot(cl: &Cluster, conns: &mut [redis::Connection]) {
    let before = cl.total_keys();
    let slot = |conns: &mut [redis::Connection], id: &str| cl.keyslot(&mut conns[0], id.as_bytes());
    let a = "tx-a";
    let owner = cl.owner(slot(conns, a));
    let (r1, r2, r3): (String, String, i64) = redis::pipe()
        .atomic()
        .cmd("CACHE.SETUSER")
        .arg(a)
        .arg("{}")
        .cmd("CACHE.SETPERMISSIONS")
        .arg(a)
        .arg("[]")
        .cmd("CACHE.INVALIDATEUSER")
        .arg(a)
        .query(&mut conns[owner])
        .expect("one user's commands in MULTI");
    assert_eq!((r1.as_str(), r2.as_str(), r3), ("OK", "OK", 2));
    // Another id on the same node but in another slot.
    let b = (0..10_000)
        .map(|i| format!("tx-b{i}"))
        .find(|b| {
            let s = slot(conns, b);
            s != slot(conns, a) && cl.owner(s) == owner
        })
        .expect("an id on the same node");
    let con = &mut conns[owner];
    let _: () = redis::cmd("MULTI").query(con).expect("MULTI");
    for id in [a, b.as_str()] {
        let q: String = redis::cmd("CACHE.SETUSER")
            .arg(id)
            .arg("{}")
            .query(con)
            .expect("queued");
        assert_eq!(q, "QUEUED");
    }
    let e = redis::cmd("EXEC")
        .query::<Value>(con)
        .expect_err("two slots in one transaction");
    assert_eq!(e.kind(), redis::ErrorKind::CrossSlot, "{e}");
    assert_eq!(cl.total_keys(), before);
}

fn stats_over_masters(cc: &mut ClusterConnection) -> (i64, i64, i64, i64) {
    let v = cc
        .route_command(&redis::cmd("CACHE.STATS"), all_masters())
        .expect("CACHE.STATS on all masters");
    let per_node = match v {
        Value::Map(m) => m,
        other => panic!("CACHE.STATS: {other:?}"),
    };
    assert_eq!(per_node.len(), 3);
    let mut sum = (0, 0, 0, 0);
    for (_, s) in per_node {
        let m = as_map(&s);
        sum.0 += int(&m, "hits");
        sum.1 += int(&m, "misses");
        let rl = as_map(m.get("ratelimit").expect("ratelimit"));
        sum.2 += int(&rl, "allowed");
        sum.3 += int(&rl, "denied");
    }
    sum
}

/// `redis-cli -c`, connected to any node, follows the redirects by itself.
fn redis_cli_follows_redirects(cl: &Cluster, conns: &mut [redis::Connection]) {
    let cli = |port: u16, args: &[&str]| -> String {
        let out = Command::new("redis-cli")
            .args(["-c", "-p", &port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !s.contains("MOVED") && !s.contains("CROSSSLOT") && !s.contains("ERR"),
            "redis-cli {args:?}: {s}"
        );
        s.trim_end_matches('\n').to_string()
    };
    for n in 0..25 {
        let port = cl.nodes[n % 3].port;
        let id = if n % 2 == 0 {
            format!("cli{n}")
        } else {
            format!("c{{li{n}")
        };
        let text = format!("текст {{{n}}}");
        let user = format!(r#"{{"cli":{n}}}"#);
        assert_eq!(cli(port, &["CACHE.SETUSER", &id, &user]), "OK");
        assert_eq!(cli(port, &["CACHE.GETUSER", &id]), user);
        assert_eq!(cli(port, &["CACHE.SETSEARCH", "q q", &id, "[1]"]), "OK");
        assert_eq!(cli(port, &["CACHE.GETSEARCH", "q q", &id]), "[1]");
        assert_eq!(cli(port, &["CACHE.SETRAG", "q", &id, "c", "[2]"]), "OK");
        assert_eq!(cli(port, &["CACHE.GETRAG", "q", &id, "c"]), "[2]");
        assert_eq!(
            cli(port, &["CACHE.SETTRANSLATION", &text, "en", "ru", "[3]"]),
            "OK"
        );
        assert_eq!(
            cli(port, &["CACHE.GETTRANSLATION", &text, "en", "ru"]),
            "[3]"
        );
        let allowed: Vec<String> = (0..3)
            .map(|_| {
                let out = cli(port, &["RATELIMIT.CHECK", &id, "2", "60"]);
                let lines: Vec<&str> = out.lines().collect();
                assert_eq!(lines.first(), Some(&"allowed"), "{out}");
                lines[1].to_string()
            })
            .collect();
        assert_eq!(allowed, ["1", "1", "0"]);
        for (kind_args, route) in [
            (vec!["search", "q q", id.as_str()], id.as_str()),
            (vec!["rag", "q", id.as_str(), "c"], id.as_str()),
            (
                vec!["translation", text.as_str(), "en", "ru"],
                text.as_str(),
            ),
            (vec!["ratelimit", id.as_str()], id.as_str()),
        ] {
            let mut args = vec!["CACHE.KEY"];
            args.extend(kind_args);
            let key = cli(port, &args);
            let slot = cl.keyslot(&mut conns[0], key.as_bytes());
            assert_eq!(slot, cl.keyslot(&mut conns[0], route.as_bytes()));
            cl.assert_only_on_owner(conns, key.as_bytes(), slot);
        }
        assert_eq!(cli(port, &["CACHE.INVALIDATEUSER", &id]), "1");
    }
}

/// The routing argument a client table uses is the one the server declares.
/// CHECKALL routes by its first identifier; limiters of one identifier
/// (one tag) are checked together, limiters in two slots are refused.
fn checkall_stays_in_one_slot(cc: &mut ClusterConnection) {
    let same: [&[u8]; 6] = [
        b"RATELIMIT.CHECKALL",
        b"2",
        b"default",
        b"ckall7",
        b"search",
        b"ckall7",
    ];
    let m = as_map(&ok(run(cc, &same), "CHECKALL"));
    assert_eq!(m.get("allowed"), Some(&Value::Int(1)));
    use redis::cluster_routing::get_slot;
    assert_ne!(get_slot(b"ckall7"), get_slot(b"ckall8"));
    let split: [&[u8]; 6] = [
        b"RATELIMIT.CHECKALL",
        b"2",
        b"default",
        b"ckall7",
        b"search",
        b"ckall8",
    ];
    let e = run(cc, &split).expect_err("limiters in two slots");
    assert!(e.to_string().contains("hash to the same slot"), "{e}");
    let m = as_map(&ok(
        run(cc, &[b"RATELIMIT.INFO", b"ckall7", b"ACTION", b"search"]),
        "INFO",
    ));
    assert_eq!(m.get("current_requests"), Some(&Value::Int(1)));
}

fn declared_routing_matches(conns: &mut [redis::Connection]) {
    let names: Vec<String> = redis::cmd("COMMAND")
        .arg("LIST")
        .arg("FILTERBY")
        .arg("MODULE")
        .arg("cachekit")
        .query(&mut conns[0])
        .expect("COMMAND LIST");
    assert!(names.len() >= 19, "{names:?}");
    for name in names {
        let v: Value = redis::cmd("COMMAND")
            .arg("INFO")
            .arg(&name)
            .query(&mut conns[0])
            .expect("COMMAND INFO");
        let first_key = match &v {
            Value::Array(cmds) => match cmds.first() {
                Some(Value::Array(info)) => match info.get(3) {
                    Some(Value::Int(k)) => *k,
                    other => panic!("{name}: {other:?}"),
                },
                other => panic!("{name}: {other:?}"),
            },
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(
            routing_arg(&name).unwrap_or(0) as i64,
            first_key,
            "{name}: declared first key"
        );
    }
}

fn drive(flavor: Flavor) {
    let started = Instant::now();
    let seed = seed();
    println!("{flavor:?} cluster test, CACHEKIT_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let cl = Cluster::start(flavor);
    println!("cluster formed in {:?}", started.elapsed());
    let mut conns = cl.conns();
    let mut cc = cl.client();
    declared_routing_matches(&mut conns);
    cl.reset_errorstats();
    ok(
        cc.route_command(redis::cmd("CACHE.STATS").arg("RESET"), all_masters()),
        "CACHE.STATS RESET",
    );

    let cases = cases(&mut rng);
    let mut exp = Expected::default();
    for c in &cases {
        write_and_read(&mut cc, c, &mut exp);
        assert!(started.elapsed() < BUDGET, "over the time budget");
    }
    check_every_key_is_home(&cl, &mut conns, exp.keys);
    for c in &cases {
        check_placement(&cl, &mut cc, &mut conns, c);
        assert!(started.elapsed() < BUDGET, "over the time budget");
    }
    for c in &cases {
        invalidate(&mut cc, c, &mut exp);
    }
    check_every_key_is_home(&cl, &mut conns, exp.keys);
    // Every command reached the owner first time: nothing was redirected.
    for code in ["MOVED", "ASK", "CROSSSLOT"] {
        assert_eq!(cl.errorstat(code), 0, "{code} replies");
    }
    assert_eq!(
        stats_over_masters(&mut cc),
        (exp.hits, exp.misses, exp.allowed, exp.denied),
        "hits, misses, allowed, denied over all masters"
    );
    println!(
        "{} ids driven and checked in {:?}",
        cases.len(),
        started.elapsed()
    );

    untaggable_ids_are_refused(&cl, &mut cc);
    checkall_stays_in_one_slot(&mut cc);
    wrong_node_gets_moved(&cl, &mut conns, &mut rng);
    transactions_stay_in_one_slot(&cl, &mut conns);

    // Commands without a routing argument run on any node.
    for con in conns.iter_mut() {
        let k: String = redis::cmd("CACHE.KEY")
            .arg("user")
            .arg(42)
            .query(con)
            .expect("CACHE.KEY anywhere");
        assert_eq!(k, "user:{42}");
        let s: Value = redis::cmd("CACHE.STATS")
            .query(con)
            .expect("CACHE.STATS anywhere");
        assert!(as_map(&s).contains_key("hits"));
    }
    // CONFIG SET cannot switch a cluster node to plain keys.
    for con in conns.iter_mut() {
        let e = redis::cmd("CONFIG")
            .arg("SET")
            .arg("cachekit.key-style")
            .arg("plain")
            .query::<Value>(con)
            .expect_err("plain in cluster mode");
        let msg = e.to_string();
        assert!(
            msg.contains(PLAIN_REFUSED) && msg.contains("tagged"),
            "{msg}"
        );
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("cachekit.key-style")
            .query(con)
            .expect("CONFIG GET");
        assert_eq!(v, ["cachekit.key-style", "tagged"]);
    }

    redis_cli_follows_redirects(&cl, &mut conns);
    // A client that routes the search/RAG commands by argument 1 still gets
    // there, one redirect later.
    let id = b"by-first-arg";
    let query = (0..1000)
        .map(|i| format!("query {i}"))
        .find(|q| {
            cl.owner(cl.keyslot(&mut conns[0], q.as_bytes()))
                != cl.owner(cl.keyslot(&mut conns[0], id))
        })
        .expect("a query on another node");
    let moved = cl.errorstat("MOVED");
    let r: String = redis::cmd("CACHE.SETSEARCH")
        .arg(&query)
        .arg(id)
        .arg("[7]")
        .query(&mut cc)
        .expect("routed by the crate's default");
    assert_eq!(r, "OK");
    assert_eq!(cl.errorstat("MOVED"), moved + 1);
    println!("{flavor:?} cluster test done in {:?}", started.elapsed());
    drop(conns);
    cl.stop();
}

#[test]
fn redis_cluster_routes_every_command_to_the_owner_of_its_keys() {
    drive(Flavor::Redis);
}

#[test]
fn valkey_cluster_routes_every_command_to_the_owner_of_its_keys() {
    drive(Flavor::Valkey);
}

/// The log of a server that refused to start because of the key style;
/// other start failures (a port taken meanwhile) are retried.
fn refused_at_start(flavor: Flavor, opts: impl Fn() -> Options) -> String {
    for _ in 0..5 {
        match try_node(flavor, opts()) {
            Ok(mut s) => {
                s.stop();
                panic!(
                    "{} started with key-style plain in cluster mode",
                    flavor.binary()
                );
            }
            Err(log) if log.contains(PLAIN_REFUSED) => return log,
            Err(_) => continue,
        }
    }
    panic!("{} did not start for an unrelated reason", flavor.binary());
}

#[test]
fn plain_key_style_is_refused_in_cluster_mode() {
    for flavor in Flavor::ALL {
        // The default (plain) and an explicit plain stop the server at start,
        // with a log line that says why and what to set.
        for args in [vec![], vec!["key-style", "plain"]] {
            let log = refused_at_start(flavor, || Options {
                module_args: args.iter().map(|s| s.to_string()).collect(),
                ..Options::default()
            });
            assert!(log.contains("cachekit: not loaded"), "{log}");
            assert!(log.contains("key-style tagged"), "{log}");
            assert!(log.contains("cachekit.key-style tagged"), "{log}");
        }

        // `cachekit.key-style tagged` in the config file is enough.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
            "target/test-servers/cachekit-conf-{}-{}",
            std::process::id(),
            flavor.binary()
        ));
        std::fs::create_dir_all(&dir).expect("conf dir");
        let conf = dir.join("cachekit.conf");
        std::fs::write(&conf, "cachekit.key-style tagged\n").expect("write conf");
        let mut s = node(
            flavor,
            &[],
            &["--include", &conf.display().to_string()],
            true,
        );
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("cachekit.key-style")
            .query(&mut s.conn())
            .expect("CONFIG GET");
        assert_eq!(v, ["cachekit.key-style", "tagged"]);
        s.stop();
        s.assert_log_clean();
        // ... and plain there is refused like a load argument.
        std::fs::write(&conf, "cachekit.key-style plain\n").expect("write conf");
        let log = refused_at_start(flavor, || Options {
            server_args: vec!["--include".into(), conf.display().to_string()],
            ..Options::default()
        });
        assert!(log.contains("cachekit: not loaded"), "{log}");
        let _ = std::fs::remove_dir_all(&dir);

        // MODULE LOAD at runtime: refused (and not loaded), then loaded tagged.
        let mut s = node(flavor, &[], &["--enable-module-command", "local"], false);
        let mut c = s.conn();
        let so = module_path().display().to_string();
        let e = redis::cmd("MODULE")
            .arg("LOAD")
            .arg(&so)
            .query::<Value>(&mut c)
            .expect_err("plain at MODULE LOAD");
        assert_eq!(e.code(), Some("ERR"), "{e}");
        let modules: Value = redis::cmd("MODULE").arg("LIST").query(&mut c).unwrap();
        assert_eq!(modules, Value::Array(vec![]));
        assert!(s.log().contains(PLAIN_REFUSED), "{}", s.log());
        let r: String = redis::cmd("MODULE")
            .arg("LOAD")
            .arg(&so)
            .arg("key-style")
            .arg("tagged")
            .query(&mut c)
            .expect("MODULE LOAD key-style tagged");
        assert_eq!(r, "OK");
        let k: String = redis::cmd("CACHE.KEY")
            .arg("session")
            .arg(7)
            .query(&mut c)
            .unwrap();
        assert_eq!(k, "session:{7}");
        let e = redis::cmd("CONFIG")
            .arg("SET")
            .arg("cachekit.key-style")
            .arg("plain")
            .query::<Value>(&mut c)
            .expect_err("plain at CONFIG SET");
        assert!(e.to_string().contains(PLAIN_REFUSED), "{e}");
        s.stop();
        s.assert_log_clean();

        // Outside cluster mode plain stays the default and both styles switch.
        let s = Server::start(flavor);
        let mut c = s.conn();
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("cachekit.key-style")
            .query(&mut c)
            .unwrap();
        assert_eq!(v, ["cachekit.key-style", "plain"]);
        for style in ["tagged", "plain"] {
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("cachekit.key-style")
                .arg(style)
                .query(&mut c)
                .unwrap();
        }
        s.assert_log_clean();
    }
}
