"""A fake ZooKeeper on 127.0.0.1 for unit tests: a real TCP server answering four-letter words.

`answers` maps a word to the text sent back before closing, as ZooKeeper does; a word it does
not hold gets nothing (the connection just closes). `behaviour(conn, word)`, when set, answers
instead (trickle, stream, hang). `close()` stops listening: connecting is then refused.
"""

from __future__ import annotations

import socket
import threading


class FakeZooKeeper:
    def __init__(self, answers: dict[str, str] | None = None, behaviour=None):
        self.answers = dict(answers or {})
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                word = conn.recv(16)
                if self.behaviour is not None:
                    self.behaviour(conn, word)
                else:
                    conn.sendall(self.answers.get(word.decode(), "").encode())
            except OSError:
                pass

    def close(self) -> None:
        # shutdown wakes the thread blocked in accept(); close alone would leave the socket
        # listening until that accept returns.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
