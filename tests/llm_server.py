"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for testing the openai prompt backend
over real HTTP with the real client.

Each POST to ``/v1/chat/completions`` is recorded and answered by the next reply of the script; once the
script is used up, every further request gets HTTP 500 "script exhausted", so an unexpected request shows
up in ``requests`` and fails the test that made it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted answer: HTTP ``status``, and the assistant's ``content`` (status 200) or an error
    ``message``; ``delay_s`` seconds pass before anything is sent; ``headers`` are added to the response (e.g.
    ``retry-after-ms``)."""

    status: int = 200
    content: str = ""
    message: str = ""
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def answer(content: str, delay_s: float = 0.0) -> Reply:
    return Reply(content=content, delay_s=delay_s)


def error(status: int, message: str = "scripted failure", retry_after_s: float | None = None) -> Reply:
    """An error reply; with ``retry_after_s``, a ``retry-after-ms`` header asks the client to wait that long."""
    headers = {} if retry_after_s is None else {"retry-after-ms": str(round(retry_after_s * 1000))}
    return Reply(status=status, message=message, headers=headers)


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict
    received_s: float  # time.monotonic() on arrival


@dataclass
class FakeLLMServer:
    script: list[Reply] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes delayed replies
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self.script.pop(0) if self.script else error(500, "script exhausted")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # seconds a connection may stay silent: no request loop can hang the suite

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                headers = {name.lower(): value for name, value in self.headers.items()}
                reply = server._next_reply(RecordedRequest(self.path, headers, body, time.monotonic()))
                if reply.delay_s and server._stopping.wait(reply.delay_s):
                    return
                if reply.status == 200:
                    payload = {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", ""),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": reply.content},
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                else:
                    payload = {"error": {"message": reply.message, "type": "test", "code": None}}
                data = json.dumps(payload).encode("utf-8")
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (timeout tests)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep the test output clean

        return Handler
