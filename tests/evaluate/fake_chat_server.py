"""A small OpenAI-compatible chat-completions server on 127.0.0.1 that counts requests (for the client's tests).

It answers `GET /v1/models` and `POST /v1/chat/completions`; the answer of a request is looked up by the file
name of its video (`answers`: one text, repeated for each of the request's `n` choices, or a list whose first `n`
items are the choices, fewer when it is shorter; the choices are sent in reverse index order), each request is
recorded (video, Authorization header, body), and `fail_first` / `fail_always` make it answer HTTP 500 for given
video names. `delay_s` slows every answer (to interrupt a run).
Malformed answers: `raw` maps a video name to the (status, content type, body) sent instead of an answer,
`echo_key` names videos answered HTTP 500 with a body that quotes the request's Authorization header, and
`models_body` replaces the body of `GET /v1/models`.
`status` answers every request with that HTTP status and `error_message` (a client error, e.g. 400);
`prompt_tokens` (a function of the request body) adds `usage` as the parity pre-flight reads it.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import threading
import time
from pathlib import Path
from typing import Any


class FakeChatServer:
    def __init__(self, answers: dict[str, str | list[str]], model: str = "served-model", delay_s: float = 0.0) -> None:
        self.answers = answers
        self.model = model
        self.delay_s = delay_s
        self.fail_first: set[str] = set()
        self.fail_always: set[str] = set()
        self.raw: dict[str, tuple[int, str, str | bytes]] = {}
        self.echo_key: set[str] = set()
        self.models_body: str | None = None
        self.status: int | None = None
        self.error_message = "injected client error"
        self.prompt_tokens: Any = None
        self.counts: collections.Counter[str] = collections.Counter()
        self.auth: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._socket is not None
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}/v1"

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.auth.clear()
            self.bodies.clear()

    async def _models(self, request):
        from starlette.responses import JSONResponse, Response

        if self.models_body is not None:
            return Response(self.models_body, media_type="application/json")
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "test"}]})

    async def _chat(self, request):
        from starlette.responses import JSONResponse, Response

        body = await request.json()
        parts = [c for m in body["messages"] if isinstance(m["content"], list) for c in m["content"]]
        part = next(c for c in parts if "video_url" in c)
        video = Path(part["video_url"]["url"].removeprefix("file://")).name
        with self._lock:
            self.counts[video] += 1
            self.auth.append(request.headers.get("authorization", ""))
            self.bodies.append(body)
            first = self.counts[video] == 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status is not None:
            return JSONResponse({"error": {"message": self.error_message}}, status_code=self.status)
        if video in self.fail_always or (first and video in self.fail_first):
            return JSONResponse({"error": {"message": "injected failure"}}, status_code=500)
        if video in self.echo_key:
            quoted = f"invalid credentials: {request.headers.get('authorization', '')}"
            return JSONResponse({"error": {"message": quoted}}, status_code=500)
        if video in self.raw:
            status, content_type, content = self.raw[video]
            return Response(content, status_code=status, media_type=content_type)
        answer = self.answers.get(video, "no answer")
        n = int(body.get("n") or 1)
        contents = answer[:n] if isinstance(answer, list) else [answer] * n
        choices = [
            {"index": j, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            for j, text in enumerate(contents)
        ]
        reply = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": choices[::-1],  # the OpenAI API orders choices by their index, not by their place
        }
        if self.prompt_tokens is not None:
            n = self.prompt_tokens(body)
            reply["usage"] = {"prompt_tokens": n, "completion_tokens": 1, "total_tokens": n + 1}
        return JSONResponse(reply)

    def start(self) -> FakeChatServer:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Route

        app = Starlette(
            routes=[
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
            ]
        )
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="fake-chat", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "fake chat server did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> FakeChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
