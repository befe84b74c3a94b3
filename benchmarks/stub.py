"""A local OpenAI-compatible chat endpoint with a fixed latency and valid scripted answers.

    with StubServer(latency=0.2) as stub:         # listens on 127.0.0.1:<free port>
        litellm.completion(model="openai/stub", api_base=stub.url, api_key="stub", messages=[...])
        stub.requests                              # requests answered so far

With `limit=(n, seconds)` it behaves like a provider's rate limit: at most `n` requests are
answered per `seconds` (a sliding window); the others get `429 Too Many Requests` at once, with a
`Retry-After` header saying when the window frees (counted in `stub.refused`).

Answers: a request with a JSON-schema `response_format` gets a JSON value satisfying the schema
(enums take their first value, strings meet their minimum length); any other request is a
classification prompt ending in `Label:`, answered with the label the last `Text:` line implies
(`good` -> positive, else negative), so the scripted task is learnable and scores are real.

`StubProcess` serves the same from a child process (`python benchmarks/stub.py`), with the same
`url`, `requests` and `idle_gaps`: a stub inside the measured process takes the interpreter lock
from it for every answer it parses and writes, which a hosted model never does.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def fill_schema(schema: dict, salt: int = 0):
    """A value satisfying the simple JSON schemas promptomatix asks for, varied by `salt`."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {k: fill_schema(v, salt) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [fill_schema(schema.get("items", {}), salt * 31 + i) for i in range(max(1, schema.get("minItems", 1)))]
    if kind == "string":
        text = f"Read the text carefully and answer with its label, variant {salt}."
        while len(text) < schema.get("minLength", 0):
            text += " Be exact."
        return text[: schema.get("maxLength", 10_000)]
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return True
    return None


def classify(prompt: str) -> str:
    query = [line for line in prompt.splitlines() if line.startswith("Text:")]
    return "positive" if query and "good" in query[-1] else "negative"


def answer(body: dict, salt: int) -> str:
    messages = body.get("messages") or []
    prompt = "\n\n".join(m.get("content") if isinstance(m.get("content"), str) else "" for m in messages)
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return json.dumps(fill_schema(response_format["json_schema"].get("schema", {}), salt))
    if response_format.get("type") == "json_object":
        return "{}"
    return classify(prompt)


class StubServer:
    """`latency` seconds per request, served concurrently (one thread per connection)."""

    def __init__(self, latency: float = 0.2, host: str = "127.0.0.1", port: int = 0,
                 limit: tuple[int, float] | None = None):
        self.latency = latency
        self.limit = limit
        self.refused = 0  # requests answered 429 (over `limit`)
        self._admitted: deque[float] = deque()  # monotonic times of the requests inside the window
        self.requests = 0
        self.spans: list[tuple[float, float]] = []  # (start, end) perf_counter times of each answer
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each answer waits ~40 ms for a delayed ACK

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802  (the counters, for `StubProcess`)
                with stub._lock:
                    payload = json.dumps({"requests": stub.requests, "spans": stub.spans}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                wait = stub._over_limit()
                if wait is not None:
                    payload = json.dumps({"error": {"message": "Rate limit reached for requests", "type": "requests",
                                                    "code": "rate_limit_exceeded"}}).encode()
                    self.send_response(429)
                    self.send_header("Retry-After", str(max(1, math.ceil(wait))))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                started = time.perf_counter()
                with stub._lock:
                    stub.requests += 1
                    salt = stub.requests
                time.sleep(stub.latency)
                with stub._lock:
                    stub.spans.append((started, time.perf_counter()))
                text = answer(body, salt)
                prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
                payload = json.dumps({
                    "id": f"stub-{salt}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "stub"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                              "total_tokens": prompt_tokens + len(text.split())},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-llm", daemon=True)

    def _over_limit(self) -> float | None:
        """None if this request fits the rate limit (it is then counted), else the seconds until
        the window has room."""
        if self.limit is None:
            return None
        count, seconds = self.limit
        now = time.monotonic()
        with self._lock:
            while self._admitted and now - self._admitted[0] >= seconds:
                self._admitted.popleft()
            if len(self._admitted) < count:
                self._admitted.append(now)
                return None
            self.refused += 1
            return seconds - (now - self._admitted[0])

    def idle_gaps(self, start: float, end: float) -> list[tuple[float, float]]:
        """The stretches of [start, end] (perf_counter times) with no request in flight."""
        return idle_gaps(self.spans, start, end)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def idle_gaps(spans, start: float, end: float) -> list[tuple[float, float]]:
    """The stretches of [start, end] not covered by any of `spans` ((start, end) pairs)."""
    gaps, cursor = [], start
    for begin, finish in sorted(tuple(s) for s in spans if s[1] > start and s[0] < end):
        if begin > cursor:
            gaps.append((cursor, begin))
        cursor = max(cursor, finish)
    if end > cursor:
        gaps.append((cursor, end))
    return gaps


class StubProcess:
    """A `StubServer` in a child process (see the module's doc). Its answer times are
    `perf_counter` times of the child, which on Linux is the same monotonic clock as ours."""

    def __init__(self, latency: float = 0.2):
        self.latency = latency
        self._child: subprocess.Popen | None = None
        self.url = ""

    def _stats(self) -> dict:
        with urllib.request.urlopen(self.url.removesuffix("/v1") + "/stats", timeout=30) as answer:
            return json.load(answer)

    @property
    def requests(self) -> int:
        return self._stats()["requests"]

    def idle_gaps(self, start: float, end: float) -> list[tuple[float, float]]:
        return idle_gaps(self._stats()["spans"], start, end)

    def __enter__(self) -> StubProcess:
        self._child = subprocess.Popen([sys.executable, __file__, "--latency", str(self.latency)],
                                       stdout=subprocess.PIPE, text=True)
        assert self._child.stdout is not None
        self.url = self._child.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.__exit__()
            raise RuntimeError("the stub endpoint did not start")
        return self

    def __exit__(self, *exc) -> None:
        if self._child is not None:
            self._child.terminate()
            self._child.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the stub endpoint until stopped; print its URL first.")
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    with StubServer(args.latency) as stub:
        print(stub.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
