#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/ from the repository's fixtures and the attack cases in the
project's VECTORS.md, so every seed traces back to a fixture with its provenance.

Run from anywhere: python3 fuzz/make_seeds.py. It rewrites only the files it generates
(prefix `fx-`); seeds added by hand (findings, prefix `regress-`) are kept.

Input formats (see src/fuzzing/*.rs):
- signature_header: one selector byte ('0' t=,v1=; '1' standard list; '2' github; '3' slack)
  then the header value.
- verify: 'R<scheme> <now> <tolerance> <hex secret>[,<hex secret>...]\\n' then a captured
  HTTP request; or any other first byte followed by bytes that `arbitrary` decodes.
- raw_request: a captured HTTP request.
- event, notification: a body.
- config: a TOML file.
- store_model: bytes that `arbitrary` decodes into store operations.
"""

import hashlib
import json
import pathlib
import random
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
FIXTURES = ROOT / "fixtures"

SIGNATURE_SELECTOR = {
    "X-Perf-Signature": b"0",
    "Stripe-Signature": b"0",
    "webhook-signature": b"1",
    "svix-signature": b"1",
    "X-Hub-Signature-256": b"2",
    "X-Slack-Signature": b"3",
}


def header_values(case):
    """(name, value bytes) pairs of a verify case."""
    if "header_hex" in case:
        return [(n, bytes.fromhex(v)) for n, v in case["header_hex"]]
    return [(n, v.encode()) for n, v in case["headers"]]


def body_of(case):
    return bytes.fromhex(case["body_hex"]) if "body_hex" in case else case["body"].encode()


def capture(headers, body, crlf=True):
    eol = b"\r\n" if crlf else b"\n"
    out = b"POST /webhooks/perf HTTP/1.1" + eol + b"Host: 127.0.0.1" + eol
    for name, value in headers:
        out += name.encode() + b": " + value + eol
    out += b"Content-Length: " + str(len(body)).encode() + eol + eol + body
    return out


def main():
    written = {}

    def put(target, name, data):
        written.setdefault(target, {})["fx-" + name] = data

    cases = json.loads((FIXTURES / "vectors" / "verify_cases.json").read_text())
    for case in cases:
        headers, body = header_values(case), body_of(case)
        for name, value in headers:
            if name in SIGNATURE_SELECTOR:
                put("signature_header", case["name"], SIGNATURE_SELECTOR[name] + value)
        secrets = ",".join(s["value"].encode().hex() for s in case["secrets"])
        line = f"R{case['scheme']} {case['now']} 300 {secrets}\n".encode()
        request = capture(headers, body)
        put("verify", case["name"], line + request)
        put("raw_request", case["name"], request)
    # The same requests with bare LF line ends, and the shapes the reader must refuse.
    first = cases[0]
    put("raw_request", "lf_line_ends", capture(header_values(first), body_of(first), crlf=False))
    put("raw_request", "chunked", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    put("raw_request", "truncated_body", b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort")
    put("raw_request", "two_content_lengths", b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx")

    known = json.loads((FIXTURES / "vectors" / "known_answers.json").read_text())
    for vector in known:
        selector = {"perf": b"0", "stripe": b"0", "standard": b"1", "github": b"2", "slack": b"3"}
        put("signature_header", "known_" + vector["name"], selector[vector["scheme"]] + vector["expected"].encode())

    # Structured verify inputs and store operation sequences: deterministic noise, so
    # every alteration and operation kind is reached from the first run.
    rng = random.Random(20261123)
    for i in range(16):
        put("verify", f"structured_{i:02}", b"S" + bytes(rng.randrange(256) for _ in range(96 + 16 * i)))
    for i in range(8):
        put("store_model", f"ops_{i:02}", bytes(rng.randrange(256) for _ in range(64 + 32 * i)))

    for path in sorted((FIXTURES / "events").glob("*.json")):
        put("event", path.stem, path.read_bytes())
        put("notification", path.stem, path.read_bytes())
    # VECTORS.md attack cases 12-15 for the event parser.
    event_attacks = {
        "duplicate_id": b'{"id":"a","id":"b","type":"usage.threshold_reached"}',
        "duplicate_type": b'{"id":"a","type":"x","type":"y"}',
        "nested_200": b'{"id":"a","type":"t","data":' + b"[" * 200 + b"]" * 200 + b"}",
        "nested_127": b'{"id":"a","type":"t","data":' + b"[" * 127 + b"]" * 127 + b"}",
        "nested_128": b'{"id":"a","type":"t","data":' + b"[" * 128 + b"]" * 128 + b"}",
        "non_utf8": b'{"id":"evt_\xff\xfe","type":"t"}',
        "escape_lower": b'{"id":"a","type":"t","data":{"note":"\\u001b"}}',
        "escape_upper": b'{"id":"a","type":"t","data":{"note":"\\u001B"}}',
        "control_in_org": b'{"id":"a","type":"t","data":{"organization":{"name":"Acme\\r\\nBcc: x@example.com"},"threshold":{"percent":80}}}',
    }
    for name, body in event_attacks.items():
        put("event", name, body)
        put("notification", name, body)

    readme = (ROOT / "README.md").read_text()
    example = re.search(r"```toml\n(.*?)```", readme, re.S)
    put("config", "readme_example", example.group(1).encode())
    put("config", "empty", b"")
    put("config", "unknown_key", b"[server]\nlisten = \"127.0.0.1:8080\"\nlisen = 1\n")
    put("config", "bad_type", b"[server]\nworkers = \"two\"\n")
    put("config", "env_secret", b'[[endpoints]]\nname = "perf"\npath = "/webhooks/perf"\nsecrets = [{ name = "p", env = "PERFHOOK_FUZZ_UNSET" }]\n')
    put("config", "bad_scheme", b'[[endpoints]]\nname = "perf"\npath = "/p"\nscheme = "svix"\nsecrets = []\n')

    for target, files in written.items():
        directory = SEEDS / target
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("fx-*"):
            old.unlink()
        for name, data in files.items():
            (directory / name).write_bytes(data)
        digest = hashlib.sha256(b"".join(files[k] for k in sorted(files))).hexdigest()[:12]
        print(f"{target}: {len(files)} seeds ({digest})")


if __name__ == "__main__":
    main()
