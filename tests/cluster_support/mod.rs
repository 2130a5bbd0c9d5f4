//! A three-master cluster of real servers with the module, formed the way an
//! operator does it (`redis-cli --cluster create`), and what a cluster client
//! has to know to route cachekit's commands.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_routing::{
    get_slot, MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::Value;

use crate::common::{Flavor, Options, Server};

pub const SLOTS: u16 = 16384;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// One start of a cluster-enabled node; `Err` carries its log when it exits.
/// The bus port is chosen explicitly so that any client port works.
pub fn try_node(flavor: Flavor, opts: Options) -> Result<Server, String> {
    let mut opts = opts;
    let bus = free_port().to_string();
    let mut server_args: Vec<String> = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "5000",
        "--cluster-port",
        &bus,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    server_args.append(&mut opts.server_args);
    opts.server_args = server_args;
    Server::try_start(flavor, &opts)
}

/// A cluster-enabled node: the module loaded (or not) with `module_args`,
/// plus `server_args`.
pub fn node(
    flavor: Flavor,
    module_args: &[&str],
    server_args: &[&str],
    load_module: bool,
) -> Server {
    let mut last = String::new();
    for _ in 0..5 {
        let opts = Options {
            module_args: module_args.iter().map(|s| s.to_string()).collect(),
            server_args: server_args.iter().map(|s| s.to_string()).collect(),
            load_module,
            ..Options::default()
        };
        match try_node(flavor, opts) {
            Ok(s) => return s,
            Err(e) => last = e,
        }
    }
    panic!("cluster node did not start: {last}");
}

/// The flavor's own cli for `--cluster create`; redis-cli serves both.
pub fn cli_binary(flavor: Flavor) -> &'static str {
    let own = match flavor {
        Flavor::Redis => "redis-cli",
        Flavor::Valkey => "valkey-cli",
    };
    match Command::new(own).arg("--version").output() {
        Ok(out) if out.status.success() => own,
        _ => "redis-cli",
    }
}

pub struct Cluster {
    pub flavor: Flavor,
    pub nodes: Vec<Server>,
    /// (first slot, last slot, index in `nodes`) of the masters.
    ranges: Vec<(u16, u16, usize)>,
}

impl Cluster {
    /// Three masters, no replicas, the module with `key-style tagged`.
    pub fn start(flavor: Flavor) -> Cluster {
        let nodes: Vec<Server> = (0..3)
            .map(|_| node(flavor, &["key-style", "tagged"], &[], true))
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new(cli_binary(flavor))
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run --cluster create");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("All 16384 slots covered"),
            "--cluster create failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cluster = Cluster {
            flavor,
            nodes,
            ranges: Vec::new(),
        };
        cluster.wait_until_formed();
        cluster
    }

    /// Waits until every node reports `cluster_state:ok` and all nodes agree
    /// on who owns every slot.
    fn wait_until_formed(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let states_ok = self.nodes.iter().all(|n| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut n.conn())
                    .unwrap_or_default();
                info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
            });
            if states_ok {
                let views: Vec<Vec<(u16, u16, u16)>> = self.nodes.iter().map(slot_ranges).collect();
                if views.windows(2).all(|w| w[0] == w[1]) && covers_all(&views[0]) {
                    self.ranges = views[0]
                        .iter()
                        .map(|&(a, b, port)| {
                            let i = self
                                .nodes
                                .iter()
                                .position(|n| n.port == port)
                                .expect("slot owner is one of our nodes");
                            (a, b, i)
                        })
                        .collect();
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "cluster did not reach cluster_state:ok with one view of the slots"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Index in `nodes` of the master that owns `slot`.
    pub fn owner(&self, slot: u16) -> usize {
        self.ranges
            .iter()
            .find(|&&(a, b, _)| (a..=b).contains(&slot))
            .map(|&(_, _, i)| i)
            .expect("every slot has an owner")
    }

    /// The slot of `key` as the server computes it (`CLUSTER KEYSLOT`).
    pub fn keyslot(&self, con: &mut redis::Connection, key: &[u8]) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(con)
            .expect("CLUSTER KEYSLOT")
    }

    /// Asserts that `key` exists on the master owning `slot` and that no
    /// other node holds any key of that slot (a non-owner would answer
    /// `EXISTS` with a redirect, so it is asked for its slot count instead).
    pub fn assert_only_on_owner(&self, conns: &mut [redis::Connection], key: &[u8], slot: u16) {
        let owner = self.owner(slot);
        for (i, con) in conns.iter_mut().enumerate() {
            let shown = String::from_utf8_lossy(key);
            if i == owner {
                let n: i64 = redis::cmd("EXISTS").arg(key).query(con).expect("EXISTS");
                assert_eq!(n, 1, "{shown:?} missing on its owner, node {i}");
            } else {
                let n: i64 = redis::cmd("CLUSTER")
                    .arg("COUNTKEYSINSLOT")
                    .arg(slot)
                    .query(con)
                    .expect("CLUSTER COUNTKEYSINSLOT");
                assert_eq!(
                    n, 0,
                    "slot {slot} of {shown:?} has keys on node {i}, owner {owner}"
                );
            }
        }
    }

    pub fn client(&self) -> ClusterConnection {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}/", n.port))
            .collect();
        ClusterClient::new(urls)
            .and_then(|c| c.get_connection())
            .expect("cluster client")
    }

    pub fn conns(&self) -> Vec<redis::Connection> {
        self.nodes.iter().map(|n| n.conn()).collect()
    }

    /// Sum of an `INFO errorstats` counter (`MOVED`, `ASK`, `CROSSSLOT`) over all nodes.
    pub fn errorstat(&self, code: &str) -> u64 {
        let field = format!("errorstat_{code}:count=");
        self.nodes
            .iter()
            .map(|n| {
                let info: String = redis::cmd("INFO")
                    .arg("errorstats")
                    .query(&mut n.conn())
                    .expect("INFO errorstats");
                info.lines()
                    .find_map(|l| l.strip_prefix(&field))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }

    pub fn reset_errorstats(&self) {
        for n in &self.nodes {
            let _: () = redis::cmd("CONFIG")
                .arg("RESETSTAT")
                .query(&mut n.conn())
                .expect("CONFIG RESETSTAT");
        }
    }

    pub fn total_keys(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| {
                redis::cmd("DBSIZE")
                    .query::<u64>(&mut n.conn())
                    .expect("DBSIZE")
            })
            .sum()
    }

    /// Every key on every node, with the node it is on.
    pub fn all_keys(&self) -> Vec<(usize, Vec<u8>)> {
        let mut out = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let mut c = n.conn();
            let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut c).expect("KEYS");
            out.extend(keys.into_iter().map(|k| (i, k)));
        }
        out
    }

    pub fn stop(mut self) {
        for n in &mut self.nodes {
            n.stop();
            n.assert_log_clean();
        }
    }
}

/// `CLUSTER SLOTS` as (first, last, master port), sorted.
fn slot_ranges(n: &Server) -> Vec<(u16, u16, u16)> {
    let v: Value = match redis::cmd("CLUSTER").arg("SLOTS").query(&mut n.conn()) {
        Ok(v) => v,
        Err(_) => return Vec::new(),
    };
    let mut out = Vec::new();
    if let Value::Array(ranges) = v {
        for r in ranges {
            if let Value::Array(parts) = r {
                let port = match parts.get(2) {
                    Some(Value::Array(master)) => match master.get(1) {
                        Some(Value::Int(p)) => *p as u16,
                        _ => continue,
                    },
                    _ => continue,
                };
                if let (Some(Value::Int(a)), Some(Value::Int(b))) = (parts.first(), parts.get(1)) {
                    out.push((*a as u16, *b as u16, port));
                }
            }
        }
    }
    out.sort();
    out
}

fn covers_all(ranges: &[(u16, u16, u16)]) -> bool {
    let mut next = 0u32;
    for &(a, b, _) in ranges {
        if a as u32 != next {
            return false;
        }
        next = b as u32 + 1;
    }
    next == SLOTS as u32
}

/// The argument each cachekit command routes by: the first (legacy) key
/// position in `COMMAND INFO`. This is what a cluster client must know;
/// `None` for commands that touch no key and run on any node.
pub fn routing_arg(command: &str) -> Option<usize> {
    // The cache kinds' commands: from the table of kinds.
    for kind in &cachekit::kinds::KINDS {
        if command.eq_ignore_ascii_case(kind.set_command)
            || command.eq_ignore_ascii_case(kind.get_command)
        {
            return Some(kind.route + 1);
        }
    }
    match command.to_ascii_uppercase().as_str() {
        "CACHE.KEY" | "CACHE.STATS" => None,
        "RATELIMIT.CHECKALL" => Some(3),
        _ => Some(1),
    }
}

/// Routing for `args` (command name first): to the master of the routing
/// argument's slot, or any node for commands without one.
pub fn route_for(args: &[&[u8]]) -> RoutingInfo {
    let name = String::from_utf8_lossy(args[0]).into_owned();
    match routing_arg(&name).and_then(|i| args.get(i)) {
        Some(arg) => RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
            get_slot(arg),
            SlotAddr::Master,
        ))),
        None => RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
    }
}

pub fn all_masters() -> RoutingInfo {
    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None))
}

pub fn build(args: &[&[u8]]) -> redis::Cmd {
    let mut c = redis::cmd(&String::from_utf8_lossy(args[0]));
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

/// Sends `args` through the cluster client with cachekit's routing: the
/// crate's own (it routes an unknown command by argument 1) where that is
/// right, an explicit route to the routing argument's slot otherwise.
pub fn run(cc: &mut ClusterConnection, args: &[&[u8]]) -> redis::RedisResult<Value> {
    let name = String::from_utf8_lossy(args[0]).into_owned();
    let cmd = build(args);
    match routing_arg(&name) {
        Some(1) => cmd.query(cc),
        _ => cc.route_command(&cmd, route_for(args)),
    }
}

/// A RESP2 flat map or a RESP3 map as field → value.
pub fn as_map(v: &Value) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    match v {
        Value::Array(items) => {
            for pair in items.chunks(2) {
                if let [k, v] = pair {
                    out.insert(text(k), v.clone());
                }
            }
        }
        Value::Map(items) => {
            for (k, v) in items {
                out.insert(text(k), v.clone());
            }
        }
        _ => {}
    }
    out
}

pub fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".into(),
        Value::Int(i) => i.to_string(),
        Value::Nil => "(nil)".into(),
        other => format!("{other:?}"),
    }
}

pub fn int(m: &HashMap<String, Value>, field: &str) -> i64 {
    match m.get(field) {
        Some(Value::Int(i)) => *i,
        other => panic!("field {field}: {other:?}"),
    }
}
