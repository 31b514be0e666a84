"""A fake upstream for http_pull connectors: a real HTTP server (``http.server``, one thread
per request) on a free local port, answering each path as told and recording every request
(path with its query, headers) and how many were in flight at once."""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Answer:
    status: int = 200
    body: object = None  # JSON-encoded unless ``raw`` is given
    raw: bytes | None = None
    delay: float = 0.0  # seconds before answering


@dataclass
class Hit:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Upstream:
    answers: dict[str, Answer] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def answer(self, path: str, body: object = None, **fields) -> str:
        """Answer ``path`` so from now on; its full URL."""
        self.answers[path] = Answer(body=body, **fields)
        return self.url(path)

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def hits_of(self, path: str) -> list[Hit]:
        with self._lock:
            return [hit for hit in self.hits if hit.path == path]

    def start(self) -> "Upstream":
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                with upstream._lock:
                    upstream.hits.append(Hit(parts.path, parse_qs(parts.query),
                                             dict(self.headers.items())))
                    upstream.in_flight += 1
                    upstream.max_in_flight = max(upstream.max_in_flight, upstream.in_flight)
                try:
                    answer = upstream.answers.get(parts.path, Answer(404, {"error": "no"}))
                    if answer.delay:
                        time.sleep(answer.delay)
                    content = (answer.raw if answer.raw is not None
                               else json.dumps(answer.body).encode())
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)
                finally:
                    with upstream._lock:
                        upstream.in_flight -= 1

            def log_message(self, format: str, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="fake-upstream").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
