#!/usr/bin/env python3
"""Writes test vectors for cachekit::pyjson, computed by this python3.

Each output line is one JSON record (the file is pure ASCII):
  {"input": TEXT, "output": json.dumps(json.loads(TEXT), sort_keys=True),
   "query": Q, "user_id": U,
   "key": "search:" + md5(f"{Q}:{U}:{output}".encode()).hexdigest()}
or, for a text that Python refuses:
  {"input": TEXT, "error": "<Python's message>"}

Cases are a fixed hand-picked list plus random documents from
random.Random(seed), spelled with random whitespace, key order, duplicate
keys, string escapes and number spellings so the input differs from the
canonical output.

Usage: gen_vectors.py [--seed N] [--count N] [--out PATH]
"""

import argparse
import hashlib
import json
import math
import random
import struct
import sys
from decimal import Decimal, getcontext

# Enough precision for exact midpoints between any two doubles.
getcontext().prec = 2000

# Pin Python 3.11's default so PYTHONINTMAXSTRDIGITS cannot change results.
HAS_INT_LIMIT = hasattr(sys, "set_int_max_str_digits")
if HAS_INT_LIMIT:
    sys.set_int_max_str_digits(4300)

DEFAULT_SEED = 20240601

FIXED = [
    # strings: Cyrillic, emoji, escapes, control characters
    '{"query": "погода в Москве", "lang": "ru"}',
    '{"q": "\\u043f\\u0440\\u0438\\u0432\\u0435\\u0442"}',
    '{"emoji": "😀🦀👍🏽", "escaped": "\\ud83d\\ude00", "upper": "\\uD83E\\uDD80"}',
    '{"s": "quote \\" backslash \\\\ slash \\/ / tab \\t nl \\n cr \\r bs \\b ff \\f"}',
    '{"ctl": "\\u0000\\u0001\\u001f\\u007f\\u0080\\u009f", "raw_del": "\x7f\x85"}',
    '{"bmp": "\u2028\u2029\ufeff\ufffe\uffff\ue000", "astral": "\U00010000\U0010ffff"}',
    '{"lone": "\\ud800", "low": "\\udc00", "half": "\\ud83dx", "twice": "\\ud800\\ud800"}',
    '["\\ud800\\u0041", "\\ud83d\\ud83d\\ude00", "\\udbff\\udfff", "\\udfff\\udbff"]',
    '"just a string"',
    '""',
    # keys: sorted by code point after unescaping
    '{"b": 1, "a": 2, "B": 3, "": 4, "aa": 5, "a\\u0000": 6, "é": 7, "\\u00e9": 8}',
    '{"я": 1, "а": 2, "Я": 3, "z": 4, "😀": 5, "\uffff": 6, "\\ud800": 7, "\ue000": 8}',
    '{"\\ud83d\\ude00": 1, "\\ud83d": 2, "\\ude00": 3, "\\ud7ff": 4}',
    # duplicate keys: the last value wins
    '{"a": 1, "b": 2, "a": 3}',
    '{"k": {"x": 1}, "k": [1, 2], "k": null, "j": true, "j": false}',
    '{"\\u0061": "escaped", "a": "raw"}',
    # integers
    '[0, -0, 1, -1, 42, 9007199254740993, -9223372036854775809]',
    '123456789012345678901234567890123456789012345678901234567890',
    '{"big": -100000000000000000000000000000000000000000000000001}',
    "7" * 4300,
    # floats of all shapes
    '[1.0, 1.00, 1E0, 10e-1, 0.1e1, 100e-2, 1.000000000000000000000001]',
    '[1e16, 1e+16, 1E16, 10000000000000000.0, 9999999999999998.0, 1e15]',
    '[1e-7, 1.5e-7, 1e-5, 0.00001, 0.0001, 0.001, 1e-4]',
    '[1234567890123456.0, 12345678901234567.0, 123456789012345678]',
    '[1e22, 1e21, 1.2e100, 1.7976931348623157e308, 5e-324, 2.2250738585072014e-308]',
    '[0.0, -0.0, 0e0, -0E-0, 0.000, -0.0e10]',
    '[1e400, -1e400, 1e-400, -1e-400, 1e999999999999999999999, 1e-999999999999999999]',
    '[0.1, 0.2, 0.30000000000000004, 0.3, 2.675, 1.1, 100.5, -12.5e3]',
    '[665990852861467.25, 665990852861467.75, 4503599627370497.5, 8.5e15]',
    '[9007199254740993.0, 9007199254740993.0000000001, 2.4703282292062327e-324]',
    '[2.4703282292062328e-324, 1.7976931348623158e308, 1.7976931348623159e308]',
    "1" * 400 + "e-400",
    "0." + "0" * 500 + "1e500",
    # literals, empties, whitespace, nesting
    '{"t": true, "f": false, "n": null, "e": {}, "l": []}',
    "{}",
    "[]",
    "null",
    "true",
    "false",
    ' \t\r\n{ "a" :\n[ 1 ,\t2 ] , "b":{ } }\n\t ',
    '[[[[[]]]], {"a": {"b": {"c": {"d": [{}]}}}}]',
    "[" * 64 + "]" * 64,
    '{"a": ' * 60 + "1" + "}" * 60,
    "[" * 128 + "]" * 128,
]

# Texts Python refuses (checked below), so the Rust side must refuse them.
INVALID = [
    "", " ", "{", "}", "[1,]", '{"a":1,}', '{"a" 1}', "{a:1}", "{'a':1}",
    "[1 2]", "01", "-01", "1.", ".5", "+1", "1e", "1e+", "-", "--1", "0x10",
    "tru", "nul", "True", '"abc', '"a\\x"', '"\\u12"', '"\\u12G4"',
    '"a\nb"', '"a\tb"', '"\x00"', "[1] 2", "{} {}", '"\\ud800\\u12"',
    "1 .0", "[1,,2]", "\ufeff{}", "\u00a0{}", '{"a":1}\x00', '"\\U0041"',
    "\x0b1", "\x0c1", "[1]]", '{"a":1}}', "[", '{"a":', "nulll", "-a",
]
if HAS_INT_LIMIT:
    INVALID += ["1" * 4301, "[-" + "9" * 5000 + "]"]

QUERIES = [
    "погода в Москве", "купить слона", "pizza near me", "cheap flights",
    "😀", "🦀 rust crab", "", "a:b:c", "東京 天気", "café crème",
]
USER_IDS = ["42", "0", "user-1337", "пользователь_7", "🙂", "u:1", ""]


def canonical(text):
    return json.dumps(json.loads(text), sort_keys=True)


class Gen:
    """Random documents and random spellings of them."""

    def __init__(self, seed):
        self.rnd = random.Random(seed)

    # ---- values ----

    def char(self):
        r = self.rnd
        pools = [
            (30, lambda: chr(r.randint(0x20, 0x7E))),
            (6, lambda: chr(r.randint(0x00, 0x1F))),
            (3, lambda: chr(r.randint(0x7F, 0x9F))),
            (5, lambda: chr(r.randint(0xA0, 0x2FF))),
            (10, lambda: chr(r.randint(0x400, 0x4FF))),
            (4, lambda: chr(r.randint(0x4E00, 0x9FFF))),
            (3, lambda: r.choice("\u2028\u2029\ufeff\ufffe\uffff\ue000\ud7ff\u0800")),
            (8, lambda: chr(r.randint(0x1F300, 0x1FAFF))),
            (3, lambda: chr(r.choice([0x10000, 0x10FFFF, r.randint(0x10000, 0x10FFFF)]))),
            (2, lambda: chr(r.randint(0xD800, 0xDFFF))),  # lone surrogate
            (4, lambda: r.choice('"\\/')),
        ]
        total = sum(w for w, _ in pools)
        pick = r.randint(1, total)
        for w, f in pools:
            pick -= w
            if pick <= 0:
                return f()
        return "x"

    def string(self, max_len=12):
        return "".join(self.char() for _ in range(self.rnd.randint(0, max_len)))

    def key(self):
        r = self.rnd
        # Short keys from a small alphabet collide and share prefixes often.
        if r.random() < 0.5:
            alphabet = ["a", "b", "B", "я", "а", "é", "😀", "\uffff", "\ud800", "\ue000", "_", "\x00"]
            return "".join(r.choice(alphabet) for _ in range(r.randint(0, 3)))
        return self.string(8)

    def float_value(self):
        r = self.rnd
        k = r.random()
        if k < 0.3:
            while True:
                v = struct.unpack("<d", r.getrandbits(64).to_bytes(8, "little"))[0]
                if math.isfinite(v):
                    return v
        if k < 0.45:
            return r.uniform(-1, 1) * 10.0 ** r.randint(-30, 30)
        if k < 0.6:
            return math.ldexp(r.getrandbits(53), r.randint(-60, 10))  # ties likely
        if k < 0.7:
            return float(r.choice(["1", "5", "1.5", "9.999999999999999"]) + "e" + str(r.randint(-330, 308)))
        if k < 0.8:
            return math.nextafter(float("1e%d" % r.randint(-300, 300)), r.choice([0.0, math.inf]))
        if k < 0.9:
            return r.choice([0.0, -0.0, 1.0, -1.0, 0.5, 1e16, 1e-5, 1e-4, 1e15, 5e-324, 1.7976931348623157e308])
        return float(r.randint(-(10**17), 10**17)) / 10 ** r.randint(0, 6)

    def int_value(self):
        r = self.rnd
        k = r.random()
        if k < 0.5:
            return r.randint(-1000, 1000)
        if k < 0.8:
            return r.randint(-(2**64), 2**64)
        return r.choice([-1, 1]) * r.randint(0, 10 ** r.randint(20, 60))

    def value(self, depth):
        r = self.rnd
        if depth < 5:
            k = r.random()
            if k < 0.15:
                return ("obj", self.object_pairs(depth))
            if k < 0.25:
                return ("arr", [self.value(depth + 1) for _ in range(r.randint(0, 5))])
        k = r.random()
        if k < 0.3:
            return ("str", self.string())
        if k < 0.55:
            return ("float", self.float_value())
        if k < 0.8:
            return ("int", self.int_value())
        return ("lit", r.choice(["true", "false", "null"]))

    def object_pairs(self, depth):
        r = self.rnd
        pairs = [(self.key(), self.value(depth + 1)) for _ in range(r.randint(0, 6))]
        # Duplicates: an earlier value that the later pair must override.
        for _ in range(r.randint(0, 2) if pairs and r.random() < 0.3 else 0):
            key = r.choice(pairs)[0]
            pairs.insert(0, (key, self.value(depth + 1)))
        return pairs

    def document(self):
        if self.rnd.random() < 0.9:
            return ("obj", self.object_pairs(0))
        return self.value(0)

    # ---- spellings ----

    def ws(self):
        r = self.rnd
        if r.random() < 0.6:
            return ""
        return "".join(r.choice(" \t\n\r") for _ in range(r.randint(1, 3)))

    def u_escape(self, code):
        text = "\\u%04x" % code
        return text.upper().replace("\\U", "\\u") if self.rnd.random() < 0.3 else text

    def spell_string(self, s):
        r = self.rnd
        out = ['"']
        short = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
        for c in s:
            o = ord(c)
            if 0xD800 <= o <= 0xDFFF:
                out.append(self.u_escape(o))  # only writable escaped
            elif c in short and (o < 0x20 or r.random() < 0.8 or c in '"\\'):
                out.append(short[c] if r.random() < 0.8 else self.u_escape(o))
            elif o < 0x20:
                out.append(self.u_escape(o))
            elif c == "/" and r.random() < 0.5:
                out.append("\\/")
            elif r.random() < 0.75:
                out.append(c)
            elif o >= 0x10000:
                v = o - 0x10000
                out.append(self.u_escape(0xD800 + (v >> 10)) + self.u_escape(0xDC00 + (v & 0x3FF)))
            else:
                out.append(self.u_escape(o))
        out.append('"')
        return "".join(out)

    def spell_float(self, v):
        r = self.rnd
        if not math.isfinite(v):
            return "1e400" if v > 0 else "-1e400"
        k = r.random()
        text = repr(v)
        if k < 0.2:
            return text
        if k < 0.5:
            # Same decimal value: zeros padded, decimal point moved.
            sign, digit_tuple, exp = Decimal(text).as_tuple()
            pad = r.randint(0, 3)
            digits = "".join(map(str, digit_tuple)) + "0" * pad
            exp -= pad
            if r.random() < 0.3 or digits[0] == "0":
                lead = r.randint(0, 3)
                mantissa = "0." + "0" * lead + digits
                e = exp + len(digits) + lead
            else:
                split = r.randint(1, len(digits))
                mantissa = digits[:split] + ("." + digits[split:] if split < len(digits) else "")
                e = exp + len(digits) - split
            exp_text = ("+" if e >= 0 and r.random() < 0.5 else "") + str(e)
            return ("-" if sign else "") + mantissa + r.choice("eE") + exp_text
        if k < 0.65:
            # Exact binary value written out in full.
            exact = format(Decimal(v), "f")
            return exact if "." in exact else exact + ".0"
        if k < 0.8 and v != 0:
            # Exact midpoint to a neighbour: round-half-even on parsing.
            w = math.nextafter(v, r.choice([0.0, math.inf]))
            if not math.isfinite(w):
                w = math.nextafter(v, 0.0)
            mid = (Decimal(v) + Decimal(w)) / 2
            return format(mid, "e" if r.random() < 0.5 else "f").replace("e", r.choice("eE"))
        # Random digit strings around the value's magnitude.
        exp10 = int(math.floor(math.log10(abs(v)))) if v != 0 else 0
        digits = str(r.randint(1, 9)) + "".join(r.choice("0123456789") for _ in range(r.randint(0, 30)))
        return ("-" if math.copysign(1.0, v) < 0 else "") + digits[0] + "." + (digits[1:] or "0") + "e" + str(exp10)

    def spell_int(self, i):
        if i == 0 and self.rnd.random() < 0.3:
            return "-0"
        return str(i)

    def spell(self, value):
        kind, data = value
        if kind == "obj":
            if not data:
                return "{" + self.ws() + "}"
            items = [self.ws() + self.spell_string(k) + self.ws() + ":" + self.ws() + self.spell(v) + self.ws() for k, v in data]
            return "{" + ",".join(items) + "}"
        if kind == "arr":
            if not data:
                return "[" + self.ws() + "]"
            return "[" + ",".join(self.ws() + self.spell(v) + self.ws() for v in data) + "]"
        if kind == "str":
            return self.spell_string(data)
        if kind == "float":
            return self.spell_float(data)
        if kind == "int":
            return self.spell_int(data)
        return data

    def text(self):
        return self.ws() + self.spell(self.document()) + self.ws()

    def query_and_user(self):
        r = self.rnd
        query = r.choice(QUERIES) if r.random() < 0.7 else self.plain_string()
        user = r.choice(USER_IDS) if r.random() < 0.7 else self.plain_string()
        return query, user

    def plain_string(self):
        # No lone surrogates: these are UTF-8 encoded for the md5.
        return "".join(c for c in self.string(10) if not 0xD800 <= ord(c) <= 0xDFFF)


def record(gen, text):
    try:
        output = canonical(text)
    except (ValueError, RecursionError) as exc:
        return {"input": text, "error": str(exc)}
    query, user = gen.query_and_user()
    digest = hashlib.md5(f"{query}:{user}:{output}".encode()).hexdigest()
    return {"input": text, "output": output, "query": query, "user_id": user, "key": "search:" + digest}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--count", type=int, default=400, help="random documents")
    parser.add_argument("--out", default="-", help="output path, - for stdout")
    args = parser.parse_args()

    gen = Gen(args.seed)
    records = []
    for text in FIXED:
        rec = record(gen, text)
        assert "output" in rec, f"fixed case refused by Python: {text[:60]!r}: {rec.get('error')}"
        records.append(rec)
    for text in INVALID:
        rec = record(gen, text)
        assert "error" in rec, f"invalid case accepted by Python: {text[:60]!r}"
        records.append(rec)
    for _ in range(args.count):
        text = gen.text()
        rec = record(gen, text)
        assert "output" in rec, f"generated text refused by Python: {text[:80]!r}: {rec.get('error')}"
        if rec["output"] == text:
            rec = record(gen, "\n" + text)  # keep input and output different
        records.append(rec)

    lines = "".join(json.dumps(rec, sort_keys=True) + "\n" for rec in records)
    if args.out == "-":
        sys.stdout.write(lines)
    else:
        with open(args.out, "w", encoding="ascii") as fh:
            fh.write(lines)


if __name__ == "__main__":
    main()
