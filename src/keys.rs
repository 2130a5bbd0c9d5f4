//! Key schemes. `plain` keys are byte-identical to the original Python
//! services; `tagged` keys carry a Redis Cluster hash tag whose slot is the
//! slot of the argument the command routes by.

use std::fmt::Write as _;
use std::sync::OnceLock;

use md5::{Digest, Md5};

use crate::kinds::KindId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStyle {
    Plain,
    Tagged,
}

/// Why a key could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    Empty(&'static str),
    /// The argument holds a byte that would move the key's hash tag.
    Untaggable {
        what: &'static str,
        byte: char,
    },
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Empty(what) => write!(f, "ERR {what} must not be empty"),
            KeyError::Untaggable { what, byte } => write!(
                f,
                "ERR {what} must not contain '{byte}' with key-style tagged: it would change the key's hash tag and so its cluster slot (every other byte is allowed)"
            ),
        }
    }
}

/// Checks an id that goes inside `{...}`: the tag must be the whole id, so the
/// key's slot is the id's own slot. A `{` inside is harmless: the tag still
/// ends at the `}` the module adds, and the bare id has no `}` to form a tag.
fn taggable(id: &[u8], what: &'static str) -> Result<(), KeyError> {
    if id.contains(&b'}') {
        return Err(KeyError::Untaggable { what, byte: '}' });
    }
    Ok(())
}

fn non_empty(id: &[u8], what: &'static str) -> Result<(), KeyError> {
    if id.is_empty() {
        return Err(KeyError::Empty(what));
    }
    Ok(())
}

/// `user:<id>` and friends, or `user:{<id>}` when tagged.
pub fn user_key(
    style: KeyStyle,
    kind: KindId,
    id: &[u8],
    what: &'static str,
) -> Result<Vec<u8>, KeyError> {
    let mut key = Vec::new();
    user_key_into(&mut key, style, kind, id, what)?;
    Ok(key)
}

/// [`user_key`] written into `key` (cleared first), so a hot path can reuse
/// one buffer.
pub fn user_key_into(
    key: &mut Vec<u8>,
    style: KeyStyle,
    kind: KindId,
    id: &[u8],
    what: &'static str,
) -> Result<(), KeyError> {
    non_empty(id, what)?;
    key.clear();
    key.extend_from_slice(kind.def().prefix.as_bytes());
    push_id(key, style, id, what)
}

fn push_id(
    key: &mut Vec<u8>,
    style: KeyStyle,
    id: &[u8],
    what: &'static str,
) -> Result<(), KeyError> {
    match style {
        KeyStyle::Plain => key.extend_from_slice(id),
        KeyStyle::Tagged => {
            taggable(id, what)?;
            key.push(b'{');
            key.extend_from_slice(id);
            key.push(b'}');
        }
    }
    Ok(())
}

/// Lower-case hex md5 of the parts joined by `:`, as the Python services hash them.
pub fn md5_hex(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p);
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(32);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `search:<md5(query:user_id:filters)>`; tagged: `search:{<user_id>}<md5>`.
/// `filters` is the canonical (Python `json.dumps(sort_keys=True)`) text.
pub fn search_key(
    style: KeyStyle,
    query: &[u8],
    user_id: &[u8],
    filters: &[u8],
) -> Result<Vec<u8>, KeyError> {
    hashed_user_key(style, "search:", user_id, &[query, user_id, filters])
}

/// `rag_response:<md5(query:user_id:context_hash)>`; tagged: `rag_response:{<user_id>}<md5>`.
pub fn rag_key(
    style: KeyStyle,
    query: &[u8],
    user_id: &[u8],
    context_hash: &[u8],
) -> Result<Vec<u8>, KeyError> {
    hashed_user_key(
        style,
        "rag_response:",
        user_id,
        &[query, user_id, context_hash],
    )
}

fn hashed_user_key(
    style: KeyStyle,
    prefix: &str,
    user_id: &[u8],
    parts: &[&[u8]],
) -> Result<Vec<u8>, KeyError> {
    non_empty(user_id, "user_id")?;
    let digest = md5_hex(parts);
    let mut key = Vec::with_capacity(prefix.len() + user_id.len() + 34);
    key.extend_from_slice(prefix.as_bytes());
    if style == KeyStyle::Tagged {
        push_id(&mut key, style, user_id, "user_id")?;
    }
    key.extend_from_slice(digest.as_bytes());
    Ok(key)
}

/// `translation:<md5(text)>:<source>:<target>`; tagged: the md5 is preceded by
/// `{<tag>}`, a short precomputed tag whose slot is the slot of `text`.
pub fn translation_key(style: KeyStyle, text: &[u8], source: &[u8], target: &[u8]) -> Vec<u8> {
    hashed_text_key(style, "translation:", text, &[source, target])
}

/// `embedding:<md5(text)>:<model>`; tagged as a translation, by `text`.
pub fn embedding_key(style: KeyStyle, text: &[u8], model: &[u8]) -> Vec<u8> {
    hashed_text_key(style, "embedding:", text, &[model])
}

/// `<prefix><md5(text)>:<part>...`, tagged with `text`'s slot tag before the md5.
fn hashed_text_key(style: KeyStyle, prefix: &str, text: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let digest = md5_hex(&[text]);
    let rest: usize = parts.iter().map(|p| p.len() + 1).sum();
    let mut key = Vec::with_capacity(prefix.len() + 6 + 32 + rest);
    key.extend_from_slice(prefix.as_bytes());
    if style == KeyStyle::Tagged {
        key.push(b'{');
        key.extend_from_slice(slot_tag(key_slot(text)).as_bytes());
        key.push(b'}');
    }
    key.extend_from_slice(digest.as_bytes());
    for part in parts {
        key.push(b':');
        key.extend_from_slice(part);
    }
    key
}

/// `popular_documents:<limit>:<category>` as the seed's `DatabaseOptimizer`
/// writes it (`limit` in decimal, `all` for no category); tagged:
/// `popular_documents:<limit>:{<category>}`, routed by the category.
pub fn documents_key(style: KeyStyle, limit: u64, category: &[u8]) -> Result<Vec<u8>, KeyError> {
    non_empty(category, "category")?;
    let mut key = Vec::with_capacity(18 + 20 + 3 + category.len());
    key.extend_from_slice(b"popular_documents:");
    key.extend_from_slice(limit.to_string().as_bytes());
    key.push(b':');
    push_id(&mut key, style, category, "category")?;
    Ok(key)
}

/// `rate_limit:<action>:<identifier>`; tagged: `rate_limit:<action>:{<identifier>}`.
pub fn ratelimit_key(
    style: KeyStyle,
    action: &[u8],
    identifier: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let mut key = Vec::new();
    ratelimit_key_into(&mut key, style, action, identifier)?;
    Ok(key)
}

/// [`ratelimit_key`] written into `key` (cleared first).
pub fn ratelimit_key_into(
    key: &mut Vec<u8>,
    style: KeyStyle,
    action: &[u8],
    identifier: &[u8],
) -> Result<(), KeyError> {
    non_empty(identifier, "identifier")?;
    non_empty(action, "action")?;
    // The action comes before the tag: a `{` there would open the tag early.
    if style == KeyStyle::Tagged && action.contains(&b'{') {
        return Err(KeyError::Untaggable {
            what: "action",
            byte: '{',
        });
    }
    key.clear();
    key.extend_from_slice(b"rate_limit:");
    key.extend_from_slice(action);
    key.push(b':');
    push_id(key, style, identifier, "identifier")
}

/// CRC16-CCITT (XModem), the checksum Redis Cluster hashes keys with.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

pub const SLOTS: u16 = 16384;

/// The cluster slot of a key, honouring `{...}` hash tags as Redis does.
pub fn key_slot(key: &[u8]) -> u16 {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return crc16(&key[open + 1..open + 1 + len]) % SLOTS;
            }
        }
    }
    crc16(key) % SLOTS
}

/// The shortest tag (from `[0-9a-z]`) hashing to `slot`; computed once.
pub fn slot_tag(slot: u16) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(build_slot_tags);
    tags.get(slot as usize).map(String::as_str).unwrap_or("")
}

fn build_slot_tags() -> Vec<String> {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut tags: Vec<Option<String>> = vec![None; SLOTS as usize];
    let mut missing = SLOTS as usize;
    let mut buf = Vec::with_capacity(4);
    // 36 + 36^2 + 36^3 + 36^4 candidates cover every slot well before the end.
    'len: for len in 1..=4usize {
        let total = ALPHABET.len().pow(len as u32);
        for mut n in 0..total {
            buf.clear();
            for _ in 0..len {
                buf.push(ALPHABET[n % ALPHABET.len()]);
                n /= ALPHABET.len();
            }
            let slot = (crc16(&buf) % SLOTS) as usize;
            if tags[slot].is_none() {
                tags[slot] = Some(String::from_utf8_lossy(&buf).into_owned());
                missing -= 1;
                if missing == 0 {
                    break 'len;
                }
            }
        }
    }
    tags.into_iter().map(Option::unwrap_or_default).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_match_the_python_services() {
        let p = KeyStyle::Plain;
        assert_eq!(
            user_key(p, KindId::User, b"42", "user_id").unwrap(),
            b"user:42"
        );
        assert_eq!(
            user_key(p, KindId::Permissions, b"42", "user_id").unwrap(),
            b"user_permissions:42"
        );
        assert_eq!(
            user_key(p, KindId::Session, b"7", "telegram_id").unwrap(),
            b"session:7"
        );
        assert_eq!(
            user_key(p, KindId::UserRoles, b"42", "user_id").unwrap(),
            b"user_with_roles:42"
        );
        assert_eq!(
            ratelimit_key(p, b"search", b"42").unwrap(),
            b"rate_limit:search:42"
        );
        // md5("hello") = 5d41402abc4b2a76b9719d911017c592
        assert_eq!(
            translation_key(p, b"hello", b"en", b"ru"),
            b"translation:5d41402abc4b2a76b9719d911017c592:en:ru"
        );
        // python3 -c 'import hashlib;print(hashlib.md5(b"q:42:{}").hexdigest())'
        assert_eq!(
            search_key(p, b"q", b"42", b"{}").unwrap(),
            b"search:c86fc6dd184a4457e5b67efb67ed13fd"
        );
        // The seed: f"popular_documents:{limit}:{category or 'all'}".
        assert_eq!(
            documents_key(p, 10, b"all").unwrap(),
            b"popular_documents:10:all"
        );
        // The seed's embedding cache: f"embedding:{md5(text)}:{model}".
        assert_eq!(
            embedding_key(p, b"hello", b"text-embedding-3-small"),
            b"embedding:5d41402abc4b2a76b9719d911017c592:text-embedding-3-small"
        );
    }

    #[test]
    fn tagged_keys_carry_the_id_as_tag() {
        let t = KeyStyle::Tagged;
        assert_eq!(
            user_key(t, KindId::User, b"42", "user_id").unwrap(),
            b"user:{42}"
        );
        assert_eq!(
            ratelimit_key(t, b"search", b"42").unwrap(),
            b"rate_limit:search:{42}"
        );
        for (kind, id, key) in [
            (
                KindId::Permissions,
                &b"42"[..],
                &b"user_permissions:{42}"[..],
            ),
            (KindId::Session, b"42", b"session:{42}"),
            (KindId::UserRoles, b"42", b"user_with_roles:{42}"),
            (KindId::User, b"4{2", b"user:{4{2}"),
        ] {
            assert_eq!(user_key(t, kind, id, "user_id").unwrap(), key);
        }
        // md5("q:42:{}") after the user's tag.
        assert_eq!(
            search_key(t, b"q", b"42", b"{}").unwrap(),
            b"search:{42}c86fc6dd184a4457e5b67efb67ed13fd"
        );
        // "hello" is in slot 866, whose shortest tag is precomputed.
        let k = translation_key(t, b"hello", b"en", b"ru");
        let tag = slot_tag(866);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(
            k,
            format!("translation:{{{tag}}}5d41402abc4b2a76b9719d911017c592:en:ru").as_bytes()
        );

        let e = user_key(t, KindId::User, b"4}2", "user_id").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("ERR user_id must not contain '}'"));
        let e = ratelimit_key(t, b"se{a", b"42").unwrap_err();
        assert!(e.to_string().starts_with("ERR action must not contain '{'"));
        assert!(ratelimit_key(t, b"se}a", b"42").is_ok());
        assert!(user_key(KeyStyle::Plain, KindId::User, b"", "user_id").is_err());
        // Plain keys take any id: they are for a single server.
        assert_eq!(
            user_key(KeyStyle::Plain, KindId::User, b"4}2", "user_id").unwrap(),
            b"user:4}2"
        );
    }

    #[test]
    fn slot_function_matches_redis() {
        // CRC-16/XMODEM check value.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        // Values from CLUSTER KEYSLOT on Redis 7.0.
        for (key, slot) in [
            (&b"123456789"[..], 12739),
            (b"foo", 12182),
            (b"bar", 5061),
            (b"{user1000}.following", 3443),
            (b"foo{}{bar}", 8363),
            (b"foo{{bar}}zap", 4015),
            (b"a{b", 13340),
            (b"user:{a{b}", 13340),
            (b"{", 4092),
            (b"x\xffy", 7656),
            ("я😀".as_bytes(), 11698),
        ] {
            assert_eq!(key_slot(key), slot, "{:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn every_slot_has_a_short_tag() {
        for slot in 0..SLOTS {
            let tag = slot_tag(slot);
            assert!(!tag.is_empty() && tag.len() <= 4, "slot {slot}");
            assert_eq!(key_slot(tag.as_bytes()), slot);
        }
    }

    /// Random bytes, biased towards the ones that matter to hash tags.
    fn random_bytes(rng: &mut impl rand::Rng, max_len: usize) -> Vec<u8> {
        const SPECIAL: &[u8] = b"{}{}:a1 ";
        let len = rng.gen_range(0..=max_len);
        (0..len)
            .map(|_| {
                if rng.gen_bool(0.5) {
                    SPECIAL[rng.gen_range(0..SPECIAL.len())]
                } else {
                    rng.gen()
                }
            })
            .collect()
    }

    /// The invariant a cluster relies on: every key a command touches hashes
    /// to the slot of the argument the command declares for routing, and the
    /// only refused ids are those that would break it.
    #[test]
    fn tagged_keys_live_in_the_routing_arguments_slot() {
        use rand::SeedableRng;
        let t = KeyStyle::Tagged;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let id = random_bytes(&mut rng, 12);
            let other = random_bytes(&mut rng, 24);
            let action = random_bytes(&mut rng, 8);
            let slot = key_slot(&id);
            let refused = id.is_empty() || id.contains(&b'}');
            let shown = String::from_utf8_lossy(&id).into_owned();

            // User-scoped kinds, and so all keys CACHE.INVALIDATEUSER deletes.
            for kind in crate::kinds::user_scoped() {
                match user_key(t, kind, &id, "user_id") {
                    Ok(k) => {
                        assert!(!refused, "{shown:?}");
                        assert_eq!(key_slot(&k), slot, "{:?}", String::from_utf8_lossy(&k));
                    }
                    Err(_) => assert!(refused, "{shown:?}"),
                }
            }
            // Search and RAG route by user_id, whatever the query and the rest.
            for k in [
                search_key(t, &other, &id, b"{}"),
                rag_key(t, &other, &id, &action),
            ] {
                match k {
                    Ok(k) => {
                        assert!(!refused, "{shown:?}");
                        assert_eq!(key_slot(&k), slot);
                    }
                    Err(_) => assert!(refused, "{shown:?}"),
                }
            }
            // The limiter routes by identifier; an action with '{' is refused.
            match ratelimit_key(t, &action, &id) {
                Ok(k) => assert_eq!(key_slot(&k), slot),
                Err(_) => assert!(refused || action.is_empty() || action.contains(&b'{')),
            }
            // Popular documents route by category.
            match documents_key(t, 5, &id) {
                Ok(k) => {
                    assert!(!refused, "{shown:?}");
                    assert_eq!(key_slot(&k), slot);
                }
                Err(_) => assert!(refused, "{shown:?}"),
            }
            // Embeddings route by text: any text, any model.
            assert_eq!(key_slot(&embedding_key(t, &id, &other)), slot);
            // Translations route by text: any text, any languages.
            let k = translation_key(t, &id, &action, &other);
            assert_eq!(key_slot(&k), slot, "{shown:?}");
            let k = translation_key(t, &other, &id, &action);
            assert_eq!(key_slot(&k), key_slot(&other));
            // Short: the tag adds at most 6 bytes to the plain key.
            let plain = translation_key(KeyStyle::Plain, &other, &id, &action);
            assert!(k.len() <= plain.len() + 6);
        }
    }
}
