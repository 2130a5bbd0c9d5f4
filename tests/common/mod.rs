//! Test harness: real Redis 7.0 and Valkey 8 servers with the freshly built
//! module, each on a free loopback port in its own directory, stopped by PID.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Redis,
    Valkey,
}

impl Flavor {
    pub const ALL: [Flavor; 2] = [Flavor::Redis, Flavor::Valkey];

    pub fn binary(self) -> &'static str {
        match self {
            Flavor::Redis => "redis-server",
            Flavor::Valkey => "valkey-server",
        }
    }
}

pub fn module_path() -> PathBuf {
    if let Ok(p) = std::env::var("CACHEKIT_MODULE") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/libcachekit.so");
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build --release` (make test does)",
        p.display()
    );
    p
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

pub struct Server {
    pub flavor: Flavor,
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    args: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

pub struct Options {
    pub module_args: Vec<String>,
    pub server_args: Vec<String>,
    /// Keep the directory (and so RDB/AOF files) from an earlier server.
    pub dir: Option<PathBuf>,
    pub load_module: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            module_args: vec![],
            server_args: vec![],
            dir: None,
            load_module: true,
        }
    }
}

impl Server {
    pub fn start(flavor: Flavor) -> Server {
        Server::with(flavor, Options::default())
    }

    pub fn with_module_args(flavor: Flavor, args: &[&str]) -> Server {
        Server::with(
            flavor,
            Options {
                module_args: args.iter().map(|s| s.to_string()).collect(),
                ..Options::default()
            },
        )
    }

    pub fn with(flavor: Flavor, opts: Options) -> Server {
        let mut last_err = String::new();
        for _ in 0..5 {
            match Server::try_start(flavor, &opts) {
                Ok(s) => return s,
                Err(e) => last_err = e,
            }
        }
        panic!("{} did not start: {last_err}", flavor.binary());
    }

    /// One attempt; `Err` carries the server's log when it does not come up.
    pub fn try_start(flavor: Flavor, opts: &Options) -> Result<Server, String> {
        let port = free_port();
        let dir = match &opts.dir {
            Some(d) => d.clone(),
            None => {
                let n = SEQ.fetch_add(1, Ordering::SeqCst);
                let d = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("target/test-servers")
                    .join(format!("{}-{}-{n}", std::process::id(), flavor.binary()));
                let _ = std::fs::remove_dir_all(&d);
                std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
                d
            }
        };
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--logfile".into(),
            "server.log".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--daemonize".into(),
            "no".into(),
            "--enable-debug-command".into(),
            "local".into(),
        ];
        if opts.load_module {
            args.push("--loadmodule".into());
            args.push(module_path().display().to_string());
            args.extend(opts.module_args.iter().cloned());
        }
        args.extend(opts.server_args.iter().cloned());
        let child = Command::new(flavor.binary())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run {}: {e} (run scripts/install-deps.sh)",
                    flavor.binary()
                )
            })?;
        let mut server = Server {
            flavor,
            port,
            dir,
            child: Some(child),
            args,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(c) = server.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    server.child = None;
                    return Err(format!("exited with {status}; log:\n{}", server.log()));
                }
            }
            if let Ok(mut c) = server.try_conn() {
                let pong: redis::RedisResult<String> = redis::cmd("PING").query(&mut c);
                if pong.is_ok() {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not answering on port {port}; log:\n{}",
                    server.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn try_conn(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?;
        client.get_connection_with_timeout(Duration::from_secs(5))
    }

    pub fn conn(&self) -> redis::Connection {
        self.try_conn().expect("connect to test server")
    }

    pub fn conn_resp3(&self) -> redis::Connection {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}/?protocol=resp3", self.port))
                .expect("client");
        client.get_connection().expect("connect with RESP3")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Runs redis-cli against this server; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server by PID with SIGTERM (it saves if persistence is on) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// True while the process is running.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Fails the test if the log shows a crash or a caught panic.
    pub fn assert_log_clean(&self) {
        let log = self.log();
        for bad in [
            "crashed by signal",
            "panic",
            "ASSERTION FAILED",
            "Guru Meditation",
            "internal error",
        ] {
            assert!(
                !log.contains(bad),
                "{} log contains '{bad}':\n{log}",
                self.flavor.binary()
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `f` against a fresh Redis 7.0 and a fresh Valkey 8.
pub fn on_each_server(f: impl Fn(&Server)) {
    for flavor in Flavor::ALL {
        let server = Server::start(flavor);
        f(&server);
        server.assert_log_clean();
    }
}

pub fn cmd(name: &str) -> redis::Cmd {
    redis::cmd(name)
}

/// The error text of a command that must fail.
pub fn err_of(con: &mut redis::Connection, c: &redis::Cmd) -> String {
    match c.query::<redis::Value>(con) {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => {
            let code = e.code().unwrap_or("").to_string();
            let detail = e.detail().unwrap_or("").to_string();
            if code.is_empty() {
                e.to_string()
            } else {
                format!("{code} {detail}")
            }
        }
    }
}

/// The text of `INFO <section>`.
pub fn info_text(c: &mut redis::Connection, section: &str) -> String {
    cmd("INFO").arg(section).query(c).expect("INFO")
}

/// One field of `INFO <section>`.
pub fn info_field(c: &mut redis::Connection, section: &str, field: &str) -> String {
    info_text(c, section)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .trim()
        .to_string()
}

/// One integer field of `INFO <section>`.
pub fn info_int(c: &mut redis::Connection, section: &str, field: &str) -> i64 {
    info_field(c, section, field)
        .parse()
        .unwrap_or_else(|_| panic!("INFO {section} {field} is not an integer"))
}

/// Polls `ok` until it holds; fails the test after 20 s.
pub fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The client's wall clock in Unix ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}
