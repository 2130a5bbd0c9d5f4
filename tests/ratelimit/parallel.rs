//! Parallel clients never exceed the limit.

use super::*;

#[test]
fn parallel_clients_never_exceed_the_limit() {
    on_each_server(|s| {
        const THREADS: usize = 16;
        const PER_THREAD: usize = 40;
        const LIMIT: u64 = 150;
        let admitted = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(50);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                let admitted = Arc::clone(&admitted);
                scope.spawn(move || {
                    let mut c = s.conn();
                    for _ in 0..PER_THREAD {
                        assert!(Instant::now() < deadline, "test ran past one window");
                        let d = check(&mut c, &["crowd", "150", "60"]);
                        assert!(d.count <= LIMIT as i64, "{d:?}");
                        if d.allowed {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), LIMIT);
        let mut c = s.conn();
        assert_eq!(info(&mut c, &["crowd"]).count, LIMIT as i64);
    });
}

/// The admitted requests' exact times, from the RATELIMIT.RECORD commands
/// in the AOF (the primary's own record of every admission).
fn recorded_times(dir: &Path, key: &str) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let aof_dir = dir.join("appendonlydir");
    let mut files: Vec<_> = std::fs::read_dir(&aof_dir)
        .expect("appendonlydir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    files.sort();
    for f in files {
        let data = std::fs::read(&f).expect("read AOF");
        for command in parse_resp_commands(&data) {
            if command.len() == 6
                && command[0].eq_ignore_ascii_case(b"RATELIMIT.RECORD")
                && command[1] == key.as_bytes()
            {
                let num = |b: &[u8]| -> i64 { std::str::from_utf8(b).unwrap().parse().unwrap() };
                out.push((num(&command[2]), num(&command[5])));
            }
        }
    }
    out
}

/// Splits a RESP command stream (`*N` then N `$len` bulks) into commands.
fn parse_resp_commands(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn line(data: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
        let start = *pos;
        let end = start + data.get(start..)?.windows(2).position(|w| w == b"\r\n")?;
        *pos = end + 2;
        Some(data[start..end].to_vec())
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let Some(header) = line(data, &mut pos) else {
            break;
        };
        let Some(n) = header.strip_prefix(b"*") else {
            break;
        };
        let n: usize = std::str::from_utf8(n).unwrap().parse().unwrap();
        let mut command = Vec::with_capacity(n);
        for _ in 0..n {
            let len_line = line(data, &mut pos).expect("bulk header");
            let len: usize = std::str::from_utf8(&len_line[1..])
                .unwrap()
                .parse()
                .unwrap();
            command.push(data[pos..pos + len].to_vec());
            pos += len + 2;
        }
        out.push(command);
    }
    out
}

#[test]
fn sliding_window_holds_under_parallel_load() {
    for flavor in Flavor::ALL {
        let s = Server::with(
            flavor,
            Options {
                server_args: ["--appendonly", "yes", "--appendfsync", "always"]
                    .iter()
                    .map(|a| a.to_string())
                    .collect(),
                ..Options::default()
            },
        );
        const LIMIT: i64 = 10;
        const WINDOW_MS: i64 = 1_000;
        let admitted = AtomicU64::new(0);
        let stop = Instant::now() + Duration::from_millis(2_600);
        std::thread::scope(|scope| {
            for t in 0..8u64 {
                let admitted = &admitted;
                let s = &s;
                scope.spawn(move || {
                    let mut c = s.conn();
                    let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                    let mut n = 0;
                    while Instant::now() < stop && n < 20_000 {
                        n += 1;
                        let d = check(&mut c, &["slide", "10", "1"]);
                        assert!(d.count <= LIMIT, "{d:?}");
                        if d.allowed {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                        std::thread::sleep(Duration::from_millis(rng.gen_range(0..15)));
                    }
                });
            }
        });
        let times = recorded_times(&s.dir, "rate_limit:default:slide");
        let total = admitted.load(Ordering::Relaxed) as usize;
        assert_eq!(times.len(), total, "one RECORD per admission");
        // The run spans more than two windows, so the window slid.
        assert!(total as i64 > 2 * LIMIT, "only {total} admitted");
        for (i, &(t, _)) in times.iter().enumerate() {
            let in_window: i64 = times
                .iter()
                .filter(|(u, _)| *u > t - WINDOW_MS && *u <= t)
                .map(|(_, cost)| cost)
                .sum();
            assert!(
                in_window <= LIMIT,
                "{in_window} admitted in the window ending at entry {i} ({t})"
            );
        }
        s.assert_log_clean();
    }
}
