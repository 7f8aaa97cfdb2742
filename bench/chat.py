#!/usr/bin/env python3
"""Chat latency: nginx → core-api → model server, against the model server directly.

    make dev                                   # in another terminal: the fleet + demo model
    python3 bench/chat.py [--rounds 5] [--max-tokens 64] [--json]
                          [--base http://127.0.0.1:9000] [--model-base http://127.0.0.1:8090/v1]

Same run, alternating rounds, same prompt and token budget (`max_tokens` is the
fleet's CHAT_MAX_TOKENS on the gateway path; pass the same value here):

- direct:  POST {model-base}/chat/completions (stream) to the OpenAI-compatible server;
- gateway: POST {base}/api/chat (SSE) as a signed-up user, through nginx and core-api
  (auth, history writes, the SSE re-framing).

Reports, as medians: time to the first response byte, time to the first token, and
tokens/s over the streamed part (token pieces / time from first to last piece).
For /api/chat the first byte is the `starting` event, sent before any model work,
so its gap to the first token shows what the user waits on; the first-token
difference between the two paths is what core-api adds. Stdlib only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

PROMPT = "Once upon a time, in a small village by the sea,"
SYSTEM = "You are Harvis, a helpful AI assistant."  # core-api's default CHAT_SYSTEM_PROMPT


@dataclass
class Sample:
    path: str
    first_byte_ms: float
    first_token_ms: float
    tokens: int
    tokens_per_s: float
    total_ms: float


def _conn(base: str) -> tuple[http.client.HTTPConnection, str]:
    u = urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=300), u.path.rstrip("/")


def _json(base: str, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> dict:
    conn, prefix = _conn(base)
    try:
        conn.request(method, prefix + path, json.dumps(body) if body is not None else None,
                     {"Content-Type": "application/json", **(headers or {})})  # fmt: skip
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 400:
            raise SystemExit(f"{method} {path}: {resp.status} {data[:300]!r}")
        return json.loads(data)
    finally:
        conn.close()


def _stream(base: str, path: str, body: dict, headers: dict, token_of) -> Sample:
    conn, prefix = _conn(base)
    start = time.perf_counter()
    conn.request("POST", prefix + path, json.dumps(body), {"Content-Type": "application/json", **headers})
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"POST {path}: {resp.status} {resp.read()[:300]!r}")
    first_byte = first_token = last_token = None
    tokens = 0
    buf = b""
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            break
        now = time.perf_counter()
        if first_byte is None:
            first_byte = now
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            if not block.startswith(b"data:"):
                continue
            data = block[5:].strip()
            if data == b"[DONE]":
                continue
            if token_of(json.loads(data)):
                tokens += 1
                first_token = first_token or now
                last_token = now
    end = time.perf_counter()
    conn.close()
    if first_token is None or first_byte is None or last_token is None:
        raise SystemExit(f"POST {path}: no tokens streamed")
    span = last_token - first_token
    return Sample(
        path=path,
        first_byte_ms=round((first_byte - start) * 1000, 2),
        first_token_ms=round((first_token - start) * 1000, 2),
        tokens=tokens,
        tokens_per_s=round((tokens - 1) / span, 1) if span > 0 and tokens > 1 else 0.0,
        total_ms=round((end - start) * 1000, 1),
    )


def direct(model_base: str, model: str, max_tokens: int) -> Sample:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    body = {"model": model, "messages": messages, "stream": True, "max_tokens": max_tokens, "temperature": 0}

    def token(event: dict) -> bool:
        return any((c.get("delta") or {}).get("content") for c in event.get("choices") or [])

    return _stream(model_base, "/chat/completions", body, {}, token)


def gateway(base: str, bearer: str) -> Sample:
    body = {"message": PROMPT, "history": [], "model": "mistral", "temperature": 0}

    def token(event: dict) -> bool:
        return event.get("status") == "streaming" and bool(event.get("content"))

    return _stream(base, "/api/chat", body, {"Authorization": f"Bearer {bearer}"}, token)


def summary(samples: list[Sample]) -> dict[str, float]:
    def med(attr: str) -> float:
        return round(statistics.median(getattr(s, attr) for s in samples), 2)

    return {k: med(k) for k in ("first_byte_ms", "first_token_ms", "tokens_per_s", "tokens", "total_ms")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="http://127.0.0.1:9000")
    parser.add_argument("--model-base", default="http://127.0.0.1:8090/v1")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=256, help="the fleet's CHAT_MAX_TOKENS")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    model = _json(args.model_base, "GET", "/models")["data"][0]["id"]
    tag = uuid.uuid4().hex[:10]
    token = _json(args.base, "POST", "/api/auth/signup",
                  {"username": f"bench_{tag}", "email": f"bench.{tag}@example.com",
                   "password": f"Bench-{tag}-Harbour-42"})["access_token"]  # fmt: skip

    direct(args.model_base, model, 8)  # warm both paths (model loaded, connections, caches)
    gateway(args.base, token)
    runs: dict[str, list[Sample]] = {"direct": [], "gateway": []}
    for _ in range(args.rounds):
        runs["direct"].append(direct(args.model_base, model, args.max_tokens))
        runs["gateway"].append(gateway(args.base, token))
    result = {name: summary(s) for name, s in runs.items()}
    result["gateway_adds_first_token_ms"] = round(
        result["gateway"]["first_token_ms"] - result["direct"]["first_token_ms"], 2
    )
    result["model"] = model  # type: ignore[assignment]
    if args.json:
        print(json.dumps({"summary": result, "samples": {k: [asdict(s) for s in v] for k, v in runs.items()}}))
        return 0
    print(f"model {model}, {args.rounds} rounds each, medians")
    print(f"{'path':8} {'first byte ms':>14} {'first token ms':>15} {'tokens':>7} {'tokens/s':>9} {'total ms':>9}")
    for name in ("direct", "gateway"):
        r = result[name]
        keys = ("first_byte_ms", "first_token_ms", "tokens", "tokens_per_s", "total_ms")
        cols = [r[k] for k in keys]  # type: ignore[index]
        print(f"{name:8} {cols[0]:>14} {cols[1]:>15} {cols[2]:>7} {cols[3]:>9} {cols[4]:>9}")
    print(f"the gateway path adds {result['gateway_adds_first_token_ms']} ms to the first token")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
