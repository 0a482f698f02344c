"""The metrics receiver that runs inside an execution's container: a script, never imported by the package.

``core.metric_container`` mounts this file read-only at ``/hyperai/bin/metrics-receiver.py`` and the
container's command wrapper starts it in the background, detached (its parent is the container's init,
never the user's program), with ``python3 -I -S`` (no site, no user environment), before the user's
command::

    metrics-receiver.py PORT FOLDER LIMIT    (fd 3: the wrapper's pipe, closed once listening)

The wrapper waits for fd 3 to close (or the receiver to exit), so the user's first call never finds
nobody listening; to keep that wait short (~10 ms) the socket is bound with nothing but ``_socket``,
``os`` and ``sys`` imported, and everything else is imported after.

It listens on ``127.0.0.1:PORT`` in the container's own network namespace (nothing outside the
container can reach it), answers ``openbayestool``'s ``PUT <url>`` and ``DELETE <url>/metrics/<key>``
when they carry ``Authorization: Bearer $JOB_ACCESS_TOKEN`` (the execution's random token), and appends
one JSON line per accepted request to ``FOLDER/events.jsonl``::

    {"at": <unix time>, "method": "PUT", "path": "/job", "body": "<the request body, as text>"}

plus a ``"method": "START"`` line once it listens (``"ERROR"`` if it cannot). It parses nothing of the
bodies: the host reads the file as untrusted input and validates every record. Once the file holds
``LIMIT`` bytes it answers 507 and writes nothing more.

Standard library only and Python 3.6+ syntax: it runs on whatever ``python3`` the image has. One thread
(``selectors``): it takes a single process of the container's pids limit.
"""

import _socket
import os
import sys

BASE_PATH = "/job"
MAX_HEADER = 16 * 1024
MAX_BODY = 256 * 1024
MAX_CONNECTIONS = 64
IDLE_SECONDS = 10.0
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    503: "Service Unavailable",
    507: "Insufficient Storage",
}


class Receiver:
    def __init__(self, fd, token, limit):
        self.fd = fd
        self.token = token
        self.limit = limit
        self.written = os.fstat(fd).st_size

    def record(self, method, path, body):
        import json
        import time

        line = json.dumps({"at": time.time(), "method": method, "path": path, "body": body}) + "\n"
        data = line.encode("ascii")
        if self.limit and self.written + len(data) > self.limit:
            return False
        os.write(self.fd, data)  # O_APPEND: one write per record
        self.written += len(data)
        return True

    def answer(self, request):
        """The status for one complete request (bytes up to the end of its body)."""
        head, _, body = request.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return 400
        method, path = parts[0].decode("latin-1"), parts[1].decode("latin-1")
        headers = {}
        for raw in lines[1:]:
            name, sep, value = raw.partition(b":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        expected = ("Bearer " + self.token).encode()
        if not self.token or not same(headers.get(b"authorization", b""), expected):
            return 401
        if method not in ("PUT", "DELETE"):
            return 405
        if path != BASE_PATH and not path.startswith(BASE_PATH + "/"):
            return 404
        if not self.record(method, path, body.decode("utf-8", "replace")):
            return 507
        return 200


def expected_length(buffer):
    """Bytes of the whole request once its headers are in; None while they are not; -code on an error."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return -413 if len(buffer) > MAX_HEADER else None
    length = 0
    for raw in bytes(buffer[:end]).split(b"\r\n")[1:]:
        name, _, value = raw.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding":
            return -411
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return -400
            if length < 0:
                return -400
            if length > MAX_BODY:
                return -413
    return end + 4 + length


def respond(connection, code):
    body = b"{}"
    head = (
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n"
    )
    try:  # noqa: SIM105 - contextlib would be one more import before listening
        connection.send(head.format(code, REASONS[code], len(body)).encode("ascii") + body)
    except OSError:
        pass


def same(given, expected):
    """Constant-time comparison (``hmac`` would pull in OpenSSL before the socket listens)."""
    if len(given) != len(expected):
        return False
    difference = 0
    for index in range(len(given)):  # (no zip(strict=): this runs on Python 3.6 too)
        difference |= given[index] ^ expected[index]
    return difference == 0


class Connection:
    def __init__(self, sock):
        import time

        self.sock = sock
        self.buffer = bytearray()
        self.now = time.monotonic
        self.last = self.now()


class Server:
    """All connections in one thread (``selectors``): accept, read a whole request, answer, close."""

    def __init__(self, server, receiver):
        import selectors

        self.selectors = selectors
        self.server = server
        self.receiver = receiver
        self.selector = selectors.DefaultSelector()
        self.selector.register(server, selectors.EVENT_READ, None)
        self.open = {}  # type: dict[object, Connection]

    def run(self):
        import time

        while True:
            for key, _ in self.selector.select(timeout=1.0):
                if key.data is None:
                    self.accept()
                else:
                    self.read(key.data)
            now = time.monotonic()
            for connection in [c for c in self.open.values() if now - c.last > IDLE_SECONDS]:
                self.close(connection)

    def accept(self):
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:  # none waiting (BlockingIOError), or out of descriptors: try again later
                return
            if len(self.open) >= MAX_CONNECTIONS:
                respond(sock, 503)
                sock.close()
                continue
            sock.setblocking(False)
            connection = Connection(sock)
            self.open[sock] = connection
            self.selector.register(sock, self.selectors.EVENT_READ, connection)

    def read(self, connection):
        try:
            chunk = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close(connection)
            return
        connection.buffer += chunk
        connection.last = connection.now()
        length = expected_length(connection.buffer)
        if length is None or (length > 0 and len(connection.buffer) < length):
            return
        if length < 0:
            respond(connection.sock, -length)
        else:
            try:
                code = self.receiver.answer(bytes(connection.buffer[:length]))
            except Exception:
                code = 400
            respond(connection.sock, code)
        self.close(connection)

    def close(self, connection):
        self.selector.unregister(connection.sock)
        self.open.pop(connection.sock, None)
        connection.sock.close()


def ready():
    """Close fd 3: the wrapper, waiting on the other end, starts the user's command."""
    try:  # noqa: SIM105 - see respond()
        os.close(3)
    except OSError:
        pass


def main(argv):
    port, folder, limit = int(argv[1]), argv[2], int(argv[3])
    raw = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)  # (``socket`` costs ~5 ms more to import)
    try:
        raw.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        raw.bind(("127.0.0.1", port))
        raw.listen(128)
        failure = None
    except OSError as error:
        failure = f"cannot listen on 127.0.0.1:{port}: {error.strerror}"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(os.path.join(folder, "events.jsonl"), flags, 0o644)  # there before the command starts
    ready()
    import socket

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, raw.detach())
    receiver = Receiver(fd, os.environ.get("JOB_ACCESS_TOKEN", ""), limit)
    if failure:
        receiver.record("ERROR", "", failure)
        return 1
    server.setblocking(False)
    receiver.record("START", "", f"listening on 127.0.0.1:{port}")
    Server(server, receiver).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
