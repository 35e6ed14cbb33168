"""Tiny loopback HTTP servers that misbehave on purpose: redirect, hang, dribble, flood.

Each :class:`LoopbackServer` serves one request per connection, each connection in its own
thread, with an ``answer`` function that writes whatever bytes it likes; it records every request
it received (whole: method, path, headers, body) and how many connections were opened.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from typing import Callable

Answer = Callable[["LoopbackServer", socket.socket, "Received"], None]
OK_BODY = b'{"status":1}'


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def raw(self) -> bytes:
        """Everything that arrived, as bytes, to look for a secret anywhere in it."""
        head = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
        return f"{self.method} {self.path}\r\n{head}\r\n".encode("latin-1") + self.body


class LoopbackServer:
    """A TCP server on 127.0.0.1 that answers every request with ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.requests: list[Received] = []
        self.connections = 0
        self.bytes_written = 0  # set by answers that count what they managed to send
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._acceptor.join()
        self._listener.close()
        with self._lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except socket.timeout:
                continue
            with self._lock:
                self.connections += 1
                self._open.append(connection)
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(10)
            try:
                request = _read_request(connection)
            except (OSError, ValueError):
                return
            with self._lock:
                self.requests.append(request)
            # OSError: the client went away; what the answer wrote so far is what it saw
            with contextlib.suppress(OSError):
                self._answer(self, connection, request)


def _read_request(connection: socket.socket) -> Received:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise ValueError("the client closed the connection mid-request")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return Received(method, path, headers, body)


def head(status: int, *headers: str, length: int = 0) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever", *headers, f"Content-Length: {length}",
             "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer_ok(server: LoopbackServer, connection: socket.socket, request: Received) -> None:
    connection.sendall(head(200, "Content-Type: application/json", length=len(OK_BODY))
                       + OK_BODY)


def redirect_to(status: int, location: str) -> Answer:
    def answer(server: LoopbackServer, connection: socket.socket, request: Received) -> None:
        connection.sendall(head(status, f"Location: {location}"))
    return answer


def answer_never(server: LoopbackServer, connection: socket.socket, request: Received) -> None:
    """Read the request, then say nothing until the server stops."""
    server.stopping.wait()


def dribble_body(interval: float, length: int) -> Answer:
    """A 200 whose body of ``length`` bytes comes one byte every ``interval`` seconds."""
    def answer(server: LoopbackServer, connection: socket.socket, request: Received) -> None:
        connection.sendall(head(200, length=length))
        for _ in range(length):
            if server.stopping.wait(interval):
                return
            connection.sendall(b" ")
    return answer


def dribble_head(interval: float) -> Answer:
    """A 200 whose status line and headers come one byte every ``interval`` seconds."""
    def answer(server: LoopbackServer, connection: socket.socket, request: Received) -> None:
        for byte in head(200, length=len(OK_BODY)) + OK_BODY:
            if server.stopping.wait(interval):
                return
            connection.sendall(bytes([byte]))
    return answer


def flood_error(status: int, length: int) -> Answer:
    """An error whose body announces ``length`` bytes and sends them as fast as it can.

    ``server.bytes_written`` is how many body bytes the client let through before it closed.
    """
    def answer(server: LoopbackServer, connection: socket.socket, request: Received) -> None:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        connection.sendall(head(status, "Content-Type: text/plain", length=length))
        chunk = b"e" * 65536
        for _ in range(length // len(chunk)):
            connection.sendall(chunk)
            server.bytes_written += len(chunk)
    return answer
