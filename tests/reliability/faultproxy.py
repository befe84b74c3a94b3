"""A fault-injecting HTTP proxy on loopback, between MLflow's client and `mlflow server`.

    with FaultProxy("http://127.0.0.1:5000", resets=0.05, cuts=0.02, delays=0.05, seed=0) as proxy:
        ...                                  # clients use proxy.url instead of the server's
        proxy.counts                         # {"requests": 812, "reset_before": 19, "cut": 16, ...}

One request per connection: the proxy reads a request from the client, asks the server with
`Connection: close`, reads the whole answer, and then, by a seeded draw per request, does one of:

- `reset_before`: resets the client's connection (RST) without passing the request on: the
  server never sees it;
- `reset_after`: passes the request on, lets the server answer, and resets the client's
  connection instead of answering: the write happened, the client cannot know it;
- `cut`: sends the answer cut short (somewhere in the body; in the status line when there is
  no body) and closes the connection: the client sees a broken read, such as
  `IncompleteRead(0 bytes read, 2 more expected)`, after the server did the work;
- `delay`: waits a moment before answering;
- nothing: answers as the server did.

`resets` is split evenly between the two kinds of reset; paths in `spare` get no drawn fault.
`schedule(path_suffix, *faults, method=...)` queues faults (or `pass`) for the next requests whose
path ends with `path_suffix`, whatever the draw, for tests of one endpoint (`pending`: those not
used yet).
`counts` says what was injected, `faults_by_path` on which endpoints, `seen` every request.
`down = True` (or `down_after(path_suffix)`) resets every request, as an unreachable server.

Plain threads and sockets, no dependencies: the test process runs it next to its own work.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections import Counter, deque
from urllib.parse import urlsplit

RESET_BEFORE, RESET_AFTER, CUT, DELAY = "reset_before", "reset_after", "cut", "delay"
PASS = "pass"  # in a schedule: this request goes through untouched
FAULTS = (RESET_BEFORE, RESET_AFTER, CUT, DELAY, PASS)
HOP_HEADERS = (b"connection", b"keep-alive", b"proxy-connection")
IO_TIMEOUT = 300  # s: longer than any answer of the server under test


class _Reader:
    """Buffered reads from a socket: lines, exact sizes, or all until the peer closes."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""

    def _more(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            if not self._more():
                raise ConnectionError("closed before " + repr(marker))
        head, self.buffer = self.buffer.split(marker, 1)
        return head + marker

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._more():
                raise ConnectionError("closed mid-body")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def rest(self) -> bytes:
        while self._more():
            pass
        data, self.buffer = self.buffer, b""
        return data


def _read_body(reader: _Reader, headers: dict[bytes, bytes], until_close: bool) -> bytes:
    """The body after a head, framed as the headers say (kept as sent, chunks and all)."""
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        body = b""
        while True:
            line = reader.until(b"\r\n")
            body += line
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = reader.until(b"\r\n")
                    body += trailer
                    if trailer == b"\r\n":
                        return body
            body += reader.exactly(size + 2)
    if b"content-length" in headers:
        return reader.exactly(int(headers[b"content-length"]))
    return reader.rest() if until_close else b""


def _parse_head(head: bytes) -> tuple[list[bytes], dict[bytes, bytes]]:
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            key, value = line.split(b":", 1)
            headers[key.strip().lower()] = value.strip()
    return lines, headers


def _reset(sock: socket.socket) -> None:
    """Close with a RST (SO_LINGER 0), as a crashed peer or a middlebox dropping state does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


class FaultProxy:
    def __init__(self, upstream: str, *, resets: float = 0.0, cuts: float = 0.0, delays: float = 0.0,
                 delay_range: tuple[float, float] = (0.05, 0.5), seed: int = 0, spare: tuple[str, ...] = ()):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.resets, self.cuts, self.delays, self.delay_range = resets, cuts, delays, delay_range
        self.spare = spare  # paths the draw leaves alone
        self.down = False  # every request reset before the server, as if it were unreachable
        self._down_after: str | None = None
        self.counts: Counter[str] = Counter()
        self.faults_by_path: Counter[tuple[str, str]] = Counter()
        self.seen: Counter[tuple[str, str]] = Counter()  # (method, path) of every request
        self._random = random.Random(seed)
        self._scheduled: dict[str, deque[str]] = {}
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.url = ""

    def __enter__(self) -> FaultProxy:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        accept = threading.Thread(target=self._accept, name="faultproxy-accept", daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()

    def schedule(self, path_suffix: str, *faults: str, method: str = "") -> None:
        """The next requests whose path (without query) ends with `path_suffix` (and whose method
        is `method`, if given) get `faults`, in order."""
        assert all(f in FAULTS for f in faults), faults
        with self._lock:
            self._scheduled.setdefault(f"{method} {path_suffix}", deque()).extend(faults)

    def down_after(self, path_suffix: str) -> None:
        """Once a request whose path ends with `path_suffix` has been answered, be `down`."""
        self._down_after = path_suffix

    @property
    def pending(self) -> dict[str, list[str]]:
        """Scheduled faults not injected yet: requests that never came."""
        with self._lock:
            return {key: list(queued) for key, queued in self._scheduled.items() if queued}

    @property
    def injected(self) -> int:
        return sum(self.counts[f] for f in (RESET_BEFORE, RESET_AFTER, CUT))

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), name="faultproxy-conn", daemon=True).start()

    def _draw(self, method: str, path: str) -> str | None:
        with self._lock:
            self.counts["requests"] += 1
            self.seen[(method, path)] += 1
            if self.down:
                self.counts[RESET_BEFORE] += 1
                return RESET_BEFORE
            for key, queued in self._scheduled.items():
                wanted, suffix = key.split(" ", 1)
                if queued and path.endswith(suffix) and wanted in ("", method):
                    fault: str | None = queued.popleft()
                    if fault == PASS:
                        return None
                    break
            else:
                roll = 1.0 if path in self.spare else self._random.random()
                fault = (RESET_BEFORE if roll < self.resets / 2 else RESET_AFTER if roll < self.resets
                         else CUT if roll < self.resets + self.cuts
                         else DELAY if roll < self.resets + self.cuts + self.delays else None)
            if fault:
                self.counts[fault] += 1
                self.faults_by_path[(fault, path)] += 1
            return fault

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(IO_TIMEOUT)
        try:
            reader = _Reader(client)
            head = reader.until(b"\r\n\r\n")
            lines, headers = _parse_head(head[:-4])
            body = _read_body(reader, headers, until_close=False)
            method, target = lines[0].decode("latin-1").split(" ")[:2]
            path = target.split("?")[0]
            fault = self._draw(method, path)
            if fault == RESET_BEFORE:
                _reset(client)
                return
            kept = [line for line in lines[1:] if line and line.split(b":")[0].strip().lower() not in HOP_HEADERS]
            request = b"\r\n".join([lines[0], *kept, b"Connection: close", b"", b""]) + body
            with socket.create_connection(self.upstream, timeout=IO_TIMEOUT) as server:
                server.sendall(request)
                answer = _Reader(server).rest()
            if fault == RESET_AFTER:
                _reset(client)
                return
            if fault == CUT:
                # In the body; in the status line when there is none (a head cut after it reads as a
                # whole answer whose headers ended early: nothing a client could notice).
                end = answer.find(b"\r\n\r\n") + 4
                with self._lock:
                    cut = self._random.randrange(end, len(answer)) if len(answer) > end else \
                        self._random.randrange(1, max(2, answer.find(b"\r\n")))
                client.sendall(answer[:cut])
                client.shutdown(socket.SHUT_WR)
                client.close()
                return
            if fault == DELAY:
                with self._lock:
                    pause = self._random.uniform(*self.delay_range)
                time.sleep(pause)
            client.sendall(answer)
            client.shutdown(socket.SHUT_WR)
            if self._down_after and path.endswith(self._down_after):
                self.down, self._down_after = True, None
        except OSError:
            pass  # the client gave up or the server went away: nothing to pass on
        finally:
            client.close()
