//! MULTI/EXEC and Lua: the same results as direct calls, replicated and persisted as a whole.

use super::*;

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
    // Server figures that move between the runs (the runs' own reads count
    // as keyspace hits; a script's client is not counted as connected).
    b"used_memory_peak_human",
    b"keyspace_hit_rate",
    b"connected_clients",
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
