//! Search, RAG and translation caches: keys hashed exactly as the Python
//! services hash them.

use crate::args::{given_twice, is_token, missing_value, syntax_error};
use crate::error::{CmdError, CmdResult};
use crate::json_shape::{self, Shape};
use crate::keys;
use crate::kinds::KindId;
use crate::pyjson;
use crate::redis::command::Args;
use crate::redis::commands::cache::{fetch_json, parse_set_options, store_json, style};
use crate::redis::reply::Reply;
use crate::redis::store::OwnedString;

/// Longest FILTERS argument accepted. Canonicalizing holds the parsed tree,
/// which takes up to about 30 times the text: without a bound, one read-only
/// call could take gigabytes and block the server for seconds.
pub const MAX_FILTERS_BYTES: usize = 1024 * 1024;

/// Python's `json.dumps(filters or {}, sort_keys=True)` for a FILTERS argument.
pub fn canonical_filters(text: &[u8]) -> Result<String, CmdError> {
    if text.len() > MAX_FILTERS_BYTES {
        return Err(CmdError::msg(format!(
            "ERR FILTERS is too long: {} bytes, allowed up to {MAX_FILTERS_BYTES}",
            text.len()
        )));
    }
    pyjson::canonical_object(text).map_err(|e| match e {
        pyjson::PyJsonError::NotAnObject => {
            CmdError::Static("ERR FILTERS must be a JSON object, e.g. {\"lang\": \"ru\"}")
        }
        other => {
            let text = other.to_string();
            let why = text.strip_prefix("invalid JSON: ").unwrap_or(&text);
            CmdError::msg(format!("ERR invalid JSON in FILTERS: {why}"))
        }
    })
}

/// `search:` key from `<query> <user_id>` at `at` and the canonical filters.
pub fn search_key(args: &Args, at: usize, filters: &str) -> Result<Vec<u8>, CmdError> {
    let query = args.text(at, "query")?;
    let user_id = args.text(at + 1, "user_id")?;
    Ok(keys::search_key(
        style(),
        query.as_bytes(),
        user_id.as_bytes(),
        filters.as_bytes(),
    )?)
}

pub fn rag_key(args: &Args, at: usize) -> Result<Vec<u8>, CmdError> {
    let query = args.text(at, "query")?;
    let user_id = args.text(at + 1, "user_id")?;
    let context = args.text(at + 2, "context_hash")?;
    Ok(keys::rag_key(
        style(),
        query.as_bytes(),
        user_id.as_bytes(),
        context.as_bytes(),
    )?)
}

pub fn translation_key(args: &Args, at: usize) -> Result<Vec<u8>, CmdError> {
    let text = args.text(at, "text")?;
    let source = args.text(at + 1, "source_lang")?;
    let target = args.text(at + 2, "target_lang")?;
    Ok(keys::translation_key(
        style(),
        text.as_bytes(),
        source.as_bytes(),
        target.as_bytes(),
    ))
}

const EMPTY_FILTERS: &str = "{}";

const FILTERS_OPTION: &str = "[FILTERS <json-object>]";
const SETSEARCH_OPTIONS: &str = "[FILTERS <json-object>] [TTL <seconds>]";

/// `FILTERS <json-object>` options of GETSEARCH / CACHE.KEY search, from `from` on.
pub fn get_search_filters(args: &Args, from: usize) -> Result<String, CmdError> {
    let first = args.bytes(from);
    match args.len().saturating_sub(from) {
        0 => Ok(EMPTY_FILTERS.to_string()),
        n if is_token(first, "FILTERS") => match n {
            1 => Err(missing_value(first, FILTERS_OPTION)),
            2 => canonical_filters(args.bytes(from + 1)),
            _ if is_token(args.bytes(from + 2), "FILTERS") => {
                Err(given_twice(args.bytes(from + 2), FILTERS_OPTION))
            }
            _ => Err(syntax_error(args.bytes(from + 2), FILTERS_OPTION)),
        },
        _ => Err(syntax_error(first, FILTERS_OPTION)),
    }
}

pub fn setsearch(reply: &Reply, args: &Args) -> CmdResult {
    json_shape::validate(args.bytes(3), Shape::Any, "value").map_err(CmdError::msg)?;
    let mut filters = None;
    let ttl = parse_set_options(
        args,
        4,
        KindId::Search,
        SETSEARCH_OPTIONS,
        &mut |args, i| {
            let arg = args.bytes(i);
            if !is_token(arg, "FILTERS") {
                return Ok(None);
            }
            if i + 1 >= args.len() {
                return Err(missing_value(arg, SETSEARCH_OPTIONS));
            }
            if filters.is_some() {
                return Err(given_twice(arg, SETSEARCH_OPTIONS));
            }
            filters = Some(canonical_filters(args.bytes(i + 1))?);
            Ok(Some(2))
        },
    )?;
    let filters = filters.unwrap_or_else(|| EMPTY_FILTERS.to_string());
    let key = search_key(args, 1, &filters)?;
    store_json(reply, &OwnedString::new(&key), 3, args, ttl)
}

pub fn getsearch(reply: &Reply, args: &Args) -> CmdResult {
    let filters = get_search_filters(args, 3)?;
    let key = search_key(args, 1, &filters)?;
    fetch_json(reply, args, &OwnedString::new(&key), KindId::Search)
}
