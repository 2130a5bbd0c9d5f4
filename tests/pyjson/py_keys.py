#!/usr/bin/env python3
"""Cache keys computed exactly as the original Python services compute them.

For random inputs from random.Random(seed) writes JSON lines:
  {"query", "user_id", "filters" (JSON text or null), "search",
   "context_hash", "rag", "text", "source", "target", "translation"}
where search/rag/translation are the keys of QueryCacheService and
TranslationCacheService (json.dumps(filters or {}, sort_keys=True), md5 hex).

Usage: py_keys.py --seed N [--count N]
"""

import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_vectors import Gen  # noqa: E402

LANGS = ["en", "ru", "de", "uk", "zh-CN", "pt-BR"]


def search_key(query, user_id, filters):
    filters_str = json.dumps(filters or {}, sort_keys=True)
    cache_string = f"{query}:{user_id}:{filters_str}"
    return f"search:{hashlib.md5(cache_string.encode()).hexdigest()}"


def rag_key(query, user_id, context_hash):
    return f"rag_response:{hashlib.md5(f'{query}:{user_id}:{context_hash}'.encode()).hexdigest()}"


def translation_key(text, source_lang, target_lang):
    text_hash = hashlib.md5(text.encode()).hexdigest()
    return f"translation:{text_hash}:{source_lang}:{target_lang}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    gen = Gen(args.seed)
    r = gen.rnd
    for _ in range(args.count):
        query, user_id = gen.query_and_user()
        user_id = user_id or "0"
        filters_text = None
        filters = None
        if r.random() < 0.8:
            # Only objects are filters; spell them oddly so key order and
            # number spelling differ from the canonical form.
            while True:
                filters_text = gen.text()
                value = json.loads(filters_text)
                if isinstance(value, dict):
                    filters = value
                    break
        context_hash = gen.plain_string() if r.random() < 0.5 else hashlib.sha256(query.encode()).hexdigest()
        text = gen.plain_string() if r.random() < 0.5 else query
        source, target = r.choice(LANGS), r.choice(LANGS)
        rec = {
            "query": query,
            "user_id": user_id,
            "filters": filters_text,
            "search": search_key(query, user_id, filters),
            "context_hash": context_hash,
            "rag": rag_key(query, user_id, context_hash),
            "text": text,
            "source": source,
            "target": target,
            "translation": translation_key(text, source, target),
        }
        sys.stdout.write(json.dumps(rec, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
