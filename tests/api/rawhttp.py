"""HTTP/1.1 spoken by hand over a loopback socket, for what ordinary clients will not send: a
chunked body that never ends, or one sent in pieces while the server may already answer."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import orjson


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)


def chunked_request(
    port: int,
    method: str,
    path: str,
    chunks: Iterable[bytes],
    *,
    token: str | None = None,
    finish: bool = True,
    timeout: float = 15.0,
) -> Answer:
    """Send the chunks (stopping early if the server closes), end the body only if `finish`, and
    read the answer; a server that waits for the rest of an unfinished body times out."""
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked"]
    head.append("Content-Type: application/json")
    if token is not None:
        head.append(f"Authorization: Bearer {token}")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for chunk in chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if finish:
                sock.sendall(b"0\r\n\r\n")
        return _read_answer(sock)


def _read_answer(sock: socket.socket) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += _recv(sock)
    return Answer(int(status_line.split()[1]), headers, rest[:length])


def _recv(sock: socket.socket) -> bytes:
    piece = sock.recv(65536)
    if not piece:
        raise ConnectionError("the server closed the connection before it answered")
    return piece
