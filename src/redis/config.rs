//! Module configs (`CONFIG GET/SET cachekit.<name>`, `loadmodule ... <name> <value>`).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use redis_module::configuration::{
    register_enum_configuration, register_i64_configuration, register_string_configuration,
    ConfigurationContext, ConfigurationFlags, ConfigurationValue,
};
use redis_module::{enum_configuration, Context, RedisError, RedisString};

use crate::args::parse_ll;
use crate::keys::KeyStyle;
use crate::kinds::{self, KindId};
use crate::policy::Policies;
use crate::redis::purge;
use crate::redis::store::OwnedString;

pub const DEFAULT_POLICIES: &str = "default:100/60 search:20/60 upload:5/60";
/// Ten years: longer TTLs are almost certainly a unit mistake.
pub const MAX_TTL: i64 = 315_360_000;

/// The TTL configs' values, one slot per kind; kinds sharing a config read
/// the slot of the first of them ([`KindId::ttl_slot`]).
static TTLS: [AtomicI64; kinds::COUNT] = [const { AtomicI64::new(0) }; kinds::COUNT];

/// The configured TTL of a kind, in seconds.
pub fn kind_ttl(kind: KindId) -> i64 {
    TTLS[kind.ttl_slot()].load(Ordering::Relaxed)
}

/// Percent of `maxmemory`; 0 turns the background cleanup off.
pub const MAX_PURGE_THRESHOLD: i64 = 100;
/// A day: the seed checks hourly.
pub const MAX_PURGE_INTERVAL: i64 = 86_400;

/// Integer configs besides the TTLs: name, value, default, min, max.
const PURGE_CONFIGS: [(&str, &AtomicI64, i64, i64, i64); 2] = [
    (
        "purge-threshold",
        &purge::PURGE_THRESHOLD,
        80,
        0,
        MAX_PURGE_THRESHOLD,
    ),
    (
        "purge-interval",
        &purge::PURGE_INTERVAL,
        3600,
        1,
        MAX_PURGE_INTERVAL,
    ),
];

/// Set at load: a cluster node must not use the plain key style.
pub static CLUSTER_MODE: AtomicBool = AtomicBool::new(false);

enum_configuration! {
    #[allow(non_camel_case_types)]
    #[derive(Debug, PartialEq, Eq)]
    pub enum KeyStyleOption {
        plain = 0,
        tagged = 1,
    }
}

pub struct KeyStyleConfig(AtomicU8);

pub static KEY_STYLE: KeyStyleConfig = KeyStyleConfig(AtomicU8::new(0));

/// CONFIG SET keeps only the first ~250 bytes of a module's error: keep it short.
pub const PLAIN_IN_CLUSTER: &str = "key-style plain is refused in cluster mode: plain keys do not hash to the slot a cluster routes each command by, so they would land on nodes that do not own them. Set cachekit.key-style tagged";

/// False until the config file's values are applied at load: before that a
/// plain value is only the default, which the file may still turn to tagged.
static CONFIGS_APPLIED: AtomicBool = AtomicBool::new(false);

impl KeyStyleConfig {
    pub fn get(&self) -> KeyStyle {
        if self.0.load(Ordering::Relaxed) == 1 {
            KeyStyle::Tagged
        } else {
            KeyStyle::Plain
        }
    }
}

impl ConfigurationValue<KeyStyleOption> for KeyStyleConfig {
    fn get(&self, _ctx: &ConfigurationContext) -> KeyStyleOption {
        match KeyStyleConfig::get(self) {
            KeyStyle::Plain => KeyStyleOption::plain,
            KeyStyle::Tagged => KeyStyleOption::tagged,
        }
    }

    fn set(&self, _ctx: &ConfigurationContext, val: KeyStyleOption) -> Result<(), RedisError> {
        if val == KeyStyleOption::plain
            && CLUSTER_MODE.load(Ordering::Relaxed)
            && CONFIGS_APPLIED.load(Ordering::Relaxed)
        {
            return Err(RedisError::Str(PLAIN_IN_CLUSTER));
        }
        self.0.store(val as u8, Ordering::Relaxed);
        Ok(())
    }
}

pub struct PolicyConfig {
    policies: Mutex<Option<Arc<Policies>>>,
    rendered: Mutex<Option<Rendered>>,
}

/// The policies' text as `CONFIG GET` returns it. Redis copies the string a
/// getter returns and never frees it, so the module keeps one and frees it
/// when the policies change (a new string per call would leak each time).
struct Rendered(OwnedString);

// SAFETY: Redis strings are only used on Redis's main thread, where config
// callbacks and commands run; the Mutex is there for Rust's rules only.
unsafe impl Send for Rendered {}

pub static POLICIES: PolicyConfig = PolicyConfig {
    policies: Mutex::new(None),
    rendered: Mutex::new(None),
};

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl PolicyConfig {
    /// The current policies; cheap to clone out of the lock.
    pub fn current(&self) -> Arc<Policies> {
        locked(&self.policies).clone().unwrap_or_default()
    }

    fn store(&self, p: Policies) {
        *locked(&self.policies) = Some(Arc::new(p));
        *locked(&self.rendered) = None;
    }

    /// Frees the kept text (MODULE UNLOAD).
    pub fn release(&self) {
        *locked(&self.rendered) = None;
    }
}

impl ConfigurationValue<RedisString> for PolicyConfig {
    fn get(&self, _ctx: &ConfigurationContext) -> RedisString {
        let mut rendered = locked(&self.rendered);
        let text = rendered
            .get_or_insert_with(|| Rendered(OwnedString::new(self.current().render().as_bytes())));
        // Lent, not given: the caller hands the pointer to Redis, which
        // copies it; the module frees it in `store` or `release`.
        RedisString::from_redis_module_string(std::ptr::null_mut(), text.0.ptr())
    }

    fn set(&self, _ctx: &ConfigurationContext, val: RedisString) -> Result<(), RedisError> {
        let text = std::str::from_utf8(val.as_slice())
            .map_err(|_| RedisError::Str("ratelimit-policies must be valid UTF-8"))?;
        let parsed = Policies::parse(text)
            .map_err(|e| RedisError::String(format!("invalid ratelimit-policies: {e}")))?;
        self.store(parsed);
        Ok(())
    }
}

/// Integer configs: name, value, default, min, max. The default is applied
/// at every load: the library may stay mapped across MODULE UNLOAD, so the
/// statics may hold the previous load's values.
fn int_configs() -> Vec<(&'static str, &'static AtomicI64, i64, i64, i64)> {
    let mut out: Vec<_> = kinds::ttl_configs()
        .map(|(name, default, slot)| (name, &TTLS[slot], default, 1, MAX_TTL))
        .collect();
    out.extend(PURGE_CONFIGS);
    out
}

/// `loadmodule` arguments: `name value` pairs, validated like `CONFIG SET`.
pub struct LoadArgs {
    pairs: Vec<(String, String)>,
}

impl LoadArgs {
    pub fn parse(args: &[RedisString]) -> Result<LoadArgs, String> {
        let mut texts = Vec::with_capacity(args.len());
        for (i, arg) in args.iter().enumerate() {
            let text = std::str::from_utf8(arg.as_slice())
                .map_err(|_| format!("module argument {} is not valid UTF-8", i + 1))?;
            texts.push(text.to_string());
        }
        LoadArgs::from_texts(&texts)
    }

    /// Names in any case, as Redis takes config names.
    fn from_texts(args: &[String]) -> Result<LoadArgs, String> {
        if !args.len().is_multiple_of(2) {
            return Err("module arguments must be name/value pairs, e.g. user-ttl 900".into());
        }
        let mut pairs = Vec::new();
        for pair in args.chunks(2) {
            let name = pair[0].to_ascii_lowercase();
            let value = pair[1].clone();
            let ints = int_configs();
            let known = ints.iter().any(|(n, ..)| *n == name)
                || name == "key-style"
                || name == "ratelimit-policies";
            if !known {
                let mut names: Vec<&str> = ints.iter().map(|(n, ..)| *n).collect();
                names.extend(["key-style", "ratelimit-policies"]);
                return Err(format!(
                    "unknown module argument '{name}'; known: {}",
                    names.join(" ")
                ));
            }
            // Only one value would be used, and the others never checked.
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(format!(
                    "module argument '{name}' is given twice; give each at most once"
                ));
            }
            pairs.push((name, value));
        }
        Ok(LoadArgs { pairs })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A `key-style` value, in any case as `CONFIG SET` takes it.
fn parse_key_style(value: &str) -> Result<KeyStyleOption, String> {
    if value.eq_ignore_ascii_case("plain") {
        Ok(KeyStyleOption::plain)
    } else if value.eq_ignore_ascii_case("tagged") {
        Ok(KeyStyleOption::tagged)
    } else {
        Err(format!("key-style must be plain or tagged, got '{value}'"))
    }
}

/// Registers every config with its load-time value (or default) and loads
/// those given in the config file.
pub fn register(ctx: &Context, args: &LoadArgs) -> Result<(), String> {
    // A failed load may leave this library mapped: start from a clean state.
    CONFIGS_APPLIED.store(false, Ordering::Relaxed);
    for (name, cell, documented, min, max) in int_configs() {
        let default = match args.get(name) {
            None => documented,
            Some(v) => parse_ll(v.as_bytes())
                .filter(|t| (min..=max).contains(t))
                .ok_or_else(|| {
                    format!("{name} must be an integer from {min} to {max}, got '{v}'")
                })?,
        };
        cell.store(default, Ordering::Relaxed);
        register_i64_configuration(
            ctx,
            name,
            cell,
            default,
            min,
            max,
            ConfigurationFlags::DEFAULT,
            None,
        );
    }

    let style = match args.get("key-style").map(parse_key_style) {
        None => KeyStyleOption::plain,
        Some(Ok(style)) => style,
        Some(Err(e)) => return Err(e),
    };
    KEY_STYLE.0.store(style.clone() as u8, Ordering::Relaxed);
    register_enum_configuration(
        ctx,
        "key-style",
        &KEY_STYLE,
        style,
        ConfigurationFlags::DEFAULT,
        None,
    );

    let policies = args.get("ratelimit-policies").unwrap_or(DEFAULT_POLICIES);
    let parsed =
        Policies::parse(policies).map_err(|e| format!("invalid ratelimit-policies: {e}"))?;
    POLICIES.store(parsed);
    register_string_configuration(
        ctx,
        "ratelimit-policies",
        &POLICIES,
        policies,
        ConfigurationFlags::DEFAULT,
        None,
    );

    // SAFETY: called from OnLoad with its context, after registering the configs.
    let loaded = unsafe {
        match redis_module::raw::RedisModule_LoadConfigs {
            Some(load) => load(ctx.ctx),
            None => redis_module::raw::REDISMODULE_OK as i32,
        }
    };
    if loaded != redis_module::raw::REDISMODULE_OK as i32 {
        return Err(
            "could not load cachekit configs from the config file (see the log line above)".into(),
        );
    }
    CONFIGS_APPLIED.store(true, Ordering::Relaxed);
    // Checked once the file had its say (`cachekit.key-style tagged` there is fine).
    if CLUSTER_MODE.load(Ordering::Relaxed) && KEY_STYLE.get() == KeyStyle::Plain {
        return Err(format!(
            "{PLAIN_IN_CLUSTER}: `loadmodule /path/to/libcachekit.so key-style tagged`, or `cachekit.key-style tagged` in the config file"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_args(args: &[&str]) -> Result<LoadArgs, String> {
        let texts: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        LoadArgs::from_texts(&texts)
    }

    #[test]
    fn load_argument_names_ignore_case() {
        let a = load_args(&["KEY-STYLE", "TAGGED", "User-TTL", "900"]).unwrap();
        assert_eq!(a.get("key-style"), Some("TAGGED"));
        assert_eq!(a.get("user-ttl"), Some("900"));
        // A name given twice, in any spelling, is refused: only one value
        // could be used and the other would go unchecked.
        assert_eq!(
            load_args(&["user-ttl", "abc", "USER-TTL", "2"]).err(),
            Some("module argument 'user-ttl' is given twice; give each at most once".into())
        );
        assert!(load_args(&["nope", "1"]).is_err());
        assert!(load_args(&["user-ttl"]).is_err());
    }

    #[test]
    fn key_style_values_ignore_case() {
        for v in ["plain", "PLAIN", "Plain"] {
            assert_eq!(parse_key_style(v), Ok(KeyStyleOption::plain), "{v}");
        }
        for v in ["tagged", "TAGGED", "TaGgEd"] {
            assert_eq!(parse_key_style(v), Ok(KeyStyleOption::tagged), "{v}");
        }
        for v in ["", "fancy", " tagged", "tagged ", "plain\0"] {
            assert_eq!(
                parse_key_style(v),
                Err(format!("key-style must be plain or tagged, got '{v}'"))
            );
        }
    }
}
