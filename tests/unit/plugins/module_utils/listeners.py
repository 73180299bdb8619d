"""Throwaway TCP listeners on 127.0.0.1 for the tests that need a peer which is not what the
module expects: one home for the accept loop, shared by the API, compose, NFS and database tests."""

from __future__ import annotations

import socket
import threading

GARBAGE = b"SSH-2.0-OpenSSH_9.2p1\r\nProtocol mismatch.\r\n"


class Listener:
    """A listener in a thread. ``mode``: silent (keeps each connection open, never answers),
    garbage (reads, then answers ``data``, a non-HTTP line), close (reads, then closes), greet
    (sends ``data`` at once, as a database server would). ``handle(conn)``, when given, runs in its
    own thread for each connection kept open (silent mode), e.g. to answer one request. Counts the
    connections it took."""

    def __init__(self, mode: str = "silent", data: bytes = GARBAGE, handle=None):
        self.mode, self.data, self.handle, self.connections = mode, data, handle, 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn = self.sock.accept()[0]
            except OSError:
                return
            self.connections += 1
            try:
                self._answer(conn)
            except OSError:
                pass

    def _answer(self, conn: socket.socket) -> None:
        if self.mode == "silent":
            self.held.append(conn)
            if self.handle:
                threading.Thread(target=self.handle, args=(conn,), daemon=True).start()
            return
        if self.mode == "greet":
            conn.sendall(self.data)
            conn.settimeout(3)  # wait for the client to give up, as a server would
            try:
                conn.recv(4096)
            except OSError:
                pass
        else:
            conn.settimeout(2)
            try:
                conn.recv(65536)
            except OSError:
                pass
            if self.mode == "garbage":
                conn.sendall(self.data)
        conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()
