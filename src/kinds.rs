//! The cache kinds: one entry each, from which the statistics namespaces,
//! the TTL configs, `CACHE.KEY`, the SET/GET commands' registration and the
//! tests' lists are derived. A new kind is one entry here plus whatever is
//! truly new about it (a key scheme, a value format).

/// A cache kind; its value is its index in [`KINDS`] and its statistics
/// namespace's index in the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KindId {
    User = 0,
    Permissions = 1,
    Session = 2,
    Search = 3,
    Rag = 4,
    Translation = 5,
    UserRoles = 6,
    Documents = 7,
    Embedding = 8,
}

/// How a kind's key is built from the arguments of its GET command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `<prefix><id>`; tagged `<prefix>{<id>}`.
    UserScoped,
    /// `search:<md5(query:user_id:filters)>`; tagged after `{<user_id>}`.
    Search,
    /// `rag_response:<md5(query:user_id:context_hash)>`; tagged after `{<user_id>}`.
    Rag,
    /// `<prefix><md5(text)>:<a>:<b>`; tagged with a short precomputed tag of
    /// `text`'s slot before the md5 (translations, embeddings).
    HashedText,
    /// `popular_documents:<limit>:<category>`; tagged `...:{<category>}`.
    Documents,
}

/// What the SET command stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// The client's JSON text, unchanged, when it is an object.
    JsonObject,
    /// The client's JSON text, unchanged, when it is an array.
    JsonArray,
    /// The client's JSON text, unchanged.
    Json,
    /// A float32 vector packed little-endian (see [`crate::vector`]).
    Fp32Vector,
}

pub struct Kind {
    pub id: KindId,
    /// The kind's name in `CACHE.KEY`.
    pub name: &'static str,
    /// Its statistics namespace (`CACHE.STATS`, `INFO cachekit`).
    pub namespace: &'static str,
    pub prefix: &'static str,
    pub scheme: Scheme,
    /// The GET command's arguments after its name (`CACHE.KEY` takes the
    /// same after the kind), without options.
    pub get_args: &'static [&'static str],
    /// Index in `get_args` of the argument that routes the kind's commands.
    pub route: usize,
    /// The config holding its TTL (several kinds may share one).
    pub ttl_config: &'static str,
    pub ttl_default: i64,
    pub value: Value,
    pub set_command: &'static str,
    pub get_command: &'static str,
}

pub const COUNT: usize = 9;

/// The table; [`KINDS`] is the same as a static, for references.
pub const TABLE: [Kind; COUNT] = [
    Kind {
        id: KindId::User,
        name: "user",
        namespace: "user",
        prefix: "user:",
        scheme: Scheme::UserScoped,
        get_args: &["user_id"],
        route: 0,
        ttl_config: "user-ttl",
        ttl_default: 1800,
        value: Value::JsonObject,
        set_command: "cache.setuser",
        get_command: "cache.getuser",
    },
    Kind {
        id: KindId::Permissions,
        name: "permissions",
        namespace: "permissions",
        prefix: "user_permissions:",
        scheme: Scheme::UserScoped,
        get_args: &["user_id"],
        route: 0,
        ttl_config: "user-ttl",
        ttl_default: 1800,
        value: Value::JsonArray,
        set_command: "cache.setpermissions",
        get_command: "cache.getpermissions",
    },
    Kind {
        id: KindId::Session,
        name: "session",
        namespace: "session",
        prefix: "session:",
        scheme: Scheme::UserScoped,
        get_args: &["telegram_id"],
        route: 0,
        ttl_config: "session-ttl",
        ttl_default: 3600,
        value: Value::JsonObject,
        set_command: "cache.setsession",
        get_command: "cache.getsession",
    },
    Kind {
        id: KindId::Search,
        name: "search",
        namespace: "search",
        prefix: "search:",
        scheme: Scheme::Search,
        get_args: &["query", "user_id"],
        route: 1,
        ttl_config: "search-ttl",
        ttl_default: 1800,
        value: Value::Json,
        set_command: "cache.setsearch",
        get_command: "cache.getsearch",
    },
    Kind {
        id: KindId::Rag,
        name: "rag",
        namespace: "rag",
        prefix: "rag_response:",
        scheme: Scheme::Rag,
        get_args: &["query", "user_id", "context_hash"],
        route: 1,
        ttl_config: "rag-ttl",
        ttl_default: 3600,
        value: Value::Json,
        set_command: "cache.setrag",
        get_command: "cache.getrag",
    },
    Kind {
        id: KindId::Translation,
        name: "translation",
        namespace: "translation",
        prefix: "translation:",
        scheme: Scheme::HashedText,
        get_args: &["text", "source_lang", "target_lang"],
        route: 0,
        ttl_config: "translation-ttl",
        ttl_default: 86400,
        value: Value::Json,
        set_command: "cache.settranslation",
        get_command: "cache.gettranslation",
    },
    Kind {
        id: KindId::UserRoles,
        name: "user_with_roles",
        namespace: "user_roles",
        prefix: "user_with_roles:",
        scheme: Scheme::UserScoped,
        get_args: &["user_id"],
        route: 0,
        ttl_config: "user-ttl",
        ttl_default: 1800,
        value: Value::JsonObject,
        set_command: "cache.setuserroles",
        get_command: "cache.getuserroles",
    },
    Kind {
        id: KindId::Documents,
        name: "documents",
        namespace: "documents",
        prefix: "popular_documents:",
        scheme: Scheme::Documents,
        get_args: &["limit", "category"],
        route: 1,
        ttl_config: "document-ttl",
        ttl_default: 7200,
        value: Value::JsonArray,
        set_command: "cache.setdocuments",
        get_command: "cache.getdocuments",
    },
    Kind {
        id: KindId::Embedding,
        name: "embedding",
        namespace: "embedding",
        prefix: "embedding:",
        scheme: Scheme::HashedText,
        get_args: &["text", "model"],
        route: 0,
        ttl_config: "embedding-ttl",
        ttl_default: 604_800,
        value: Value::Fp32Vector,
        set_command: "cache.setembedding",
        get_command: "cache.getembedding",
    },
];

pub static KINDS: [Kind; COUNT] = TABLE;

impl KindId {
    pub const ALL: [KindId; COUNT] = [
        KindId::User,
        KindId::Permissions,
        KindId::Session,
        KindId::Search,
        KindId::Rag,
        KindId::Translation,
        KindId::UserRoles,
        KindId::Documents,
        KindId::Embedding,
    ];

    pub fn def(self) -> &'static Kind {
        &KINDS[self as usize]
    }

    /// The statistics namespace's name.
    pub fn namespace(self) -> &'static str {
        self.def().namespace
    }

    /// The kind `CACHE.KEY` calls `name` (ASCII case ignored).
    pub fn by_name(name: &[u8]) -> Option<KindId> {
        KINDS
            .iter()
            .find(|k| k.name.as_bytes().eq_ignore_ascii_case(name))
            .map(|k| k.id)
    }

    /// The index of the first kind sharing this kind's TTL config: the
    /// slot that holds the config's value.
    pub fn ttl_slot(self) -> usize {
        let config = self.def().ttl_config;
        KINDS
            .iter()
            .position(|k| k.ttl_config == config)
            .unwrap_or(self as usize)
    }
}

/// The user-scoped kinds: those `CACHE.INVALIDATEUSER` deletes.
pub fn user_scoped() -> impl Iterator<Item = KindId> {
    KINDS
        .iter()
        .filter(|k| k.scheme == Scheme::UserScoped)
        .map(|k| k.id)
}

/// The TTL configs, each once: (name, default, slot).
pub fn ttl_configs() -> impl Iterator<Item = (&'static str, i64, usize)> {
    KINDS
        .iter()
        .enumerate()
        .filter(|(i, k)| k.id.ttl_slot() == *i)
        .map(|(i, k)| (k.ttl_config, k.ttl_default, i))
}

/// The kind names, comma separated, for error messages.
pub fn names() -> String {
    let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_consistent() {
        for (i, k) in KINDS.iter().enumerate() {
            assert_eq!(k.id as usize, i, "{}", k.name);
            assert_eq!(KindId::ALL[i], k.id);
            assert!(k.route < k.get_args.len(), "{}", k.name);
            assert_eq!(
                KindId::by_name(k.name.to_uppercase().as_bytes()),
                Some(k.id)
            );
            assert!(k.set_command.starts_with("cache.set"));
            assert!(k.get_command.starts_with("cache.get"));
            // Kinds sharing a TTL config agree on its default.
            assert_eq!(k.ttl_default, KINDS[k.id.ttl_slot()].ttl_default);
        }
        let configs: Vec<&str> = ttl_configs().map(|(n, _, _)| n).collect();
        assert_eq!(
            configs,
            [
                "user-ttl",
                "session-ttl",
                "search-ttl",
                "rag-ttl",
                "translation-ttl",
                "document-ttl",
                "embedding-ttl"
            ]
        );
        let scoped: Vec<KindId> = user_scoped().collect();
        assert_eq!(
            scoped,
            [
                KindId::User,
                KindId::Permissions,
                KindId::Session,
                KindId::UserRoles
            ]
        );
        assert_eq!(KindId::by_name(b"ratelimit"), None);
    }
}
