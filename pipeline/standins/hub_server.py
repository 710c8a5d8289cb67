"""A local server that speaks the Hugging Face Hub's HTTP protocol for one dataset repository directory.

Unmodified `huggingface_hub` (and NVIDIA's `physical_ai_av` devkit) download from it when `HF_ENDPOINT` points to
`HubServer.endpoint`. Built on starlette + uvicorn, run in a background thread on 127.0.0.1.

Endpoints (what huggingface_hub 2.4 requests; `{repo}` is `namespace/name`):

- `HEAD|GET /datasets/{repo}/resolve/{rev}/{path}`: the file, with `X-Repo-Commit`, `ETag` (plus `X-Linked-Etag`
  and `X-Linked-Size` for LFS files), `Content-Length`, `Accept-Ranges: bytes`; `Range: bytes=N-`, `bytes=N-M`
  and `bytes=-K` answer 206 with `Content-Range`. Never compressed, never an `X-Xet-Hash` (so clients use plain HTTP).
- `GET /api/datasets/{repo}[/revision/{rev}]`: `id`, `sha`, `siblings` (with sizes and LFS info if `blobs=true`).
- `GET /api/datasets/{repo}/tree/{rev}[/{path}]?recursive=&expand=&cursor=`: entries
  `{"type", "oid", "size", "path", "lfs"}`, `page_size` per page, `Link: <...>; rel="next"` for the next page.
- `POST /api/datasets/{repo}/paths-info/{rev}` (form `paths=...`): entries for the paths that exist.
- `GET /api/datasets/{repo}/refs`: the one branch.
- Errors: 404 with `X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound`; in gated mode (a token is set)
  401 (no token) or 403 (wrong token) with `X-Error-Code: GatedRepo`.

Which files are "LFS" and which are plain git files: `pipeline.standins.hub_snapshot`.

Test hooks: `counts[(method, kind)]` per request kind (`resolve`, `revision`, `tree`, `paths-info`, `refs`, `other`),
`requests` (a log of `RequestRecord`), `inject_cut(path, after_bytes, times=1)` (the next GET(s) of `path` are
cut after that many body bytes: the connection closes mid-body, as a network failure would) and
`inject_status(path, status, times=1)` (the next GET(s) of `path` answer that HTTP status). `set_faults(fail_every=N,
cut_after=BYTES)` is the same for every file, as `pipeline serve --fail-every N --cut-after BYTES` offers it: every
N-th file GET answers 500, and each file's first GET is cut after BYTES (a resuming client still completes).
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from pipeline.av.catalog import REPO_ID
from pipeline.core.errors import PipelineError
from pipeline.standins.hub_faults import FaultInjection
from pipeline.standins.hub_http import DropInjectedCut, now_iso, parse_range, stream_file
from pipeline.standins.hub_snapshot import LFS_MIN_SIZE, LFS_SUFFIXES, RepoEntry, RepoSnapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered (for tests)."""

    method: str
    # "resolve", "revision", "tree", "paths-info", "refs" or "other"
    kind: str
    # repo path for resolve/tree, else ""
    path: str
    # the Range header, if any
    range: str | None
    status: int


class HubServer(FaultInjection):
    """Serve `root` as dataset `repo_id` at `revision` (and at its commit id) on 127.0.0.1.

    Use `serve_repo(...)` for a started server in a `with` block, or `start()` / `stop()`.
    """

    def __init__(
        self,
        root: Path,
        repo_id: str = REPO_ID,
        revision: str = "main",
        token: str | None = None,
        port: int = 0,
        page_size: int = 1000,
        gate_metadata: bool = True,
    ) -> None:
        if repo_id.count("/") != 1:
            raise PipelineError(f"repo id {repo_id!r}: expected namespace/name")
        if page_size < 1:
            raise PipelineError(f"page_size {page_size}: must be >= 1")
        self.repo_id = repo_id
        self.revision = revision
        self.token = token
        # with a token: False gates only file content (resolve), as the real Hub does for a gated dataset whose
        # listing is public; True gates every endpoint
        self.gate_metadata = gate_metadata
        self.page_size = page_size
        self.snapshot = RepoSnapshot.scan(Path(root))
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._init_faults()
        self._port = port
        self._server = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # -- test hooks ------------------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self.snapshot.root

    @property
    def commit(self) -> str:
        return self.snapshot.commit

    @property
    def endpoint(self) -> str:
        """Base URL to put in `HF_ENDPOINT`, e.g. `http://127.0.0.1:40123`."""
        if self._socket is None:
            raise RuntimeError("server not started")
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.requests.clear()

    def data_gets(self) -> list[RequestRecord]:
        """The GET requests of file content so far."""
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and r.kind == "resolve"]

    def rescan(self) -> None:
        """Re-read the directory (after a test changed files)."""
        self.snapshot = RepoSnapshot.scan(self.snapshot.root)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self, timeout_s: float = 20.0) -> HubServer:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind(("127.0.0.1", self._port))
        except OSError as err:
            self._socket.close()
            self._socket = None
            raise PipelineError(f"--port {self._port}: cannot listen on 127.0.0.1 ({err.strerror})") from None
        config = uvicorn.Config(
            self._build_app(),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").addFilter(DropInjectedCut())
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="hub-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("local hub server failed to start")
            time.sleep(0.01)
        log.info("serving %s as %s at %s (commit %s)", self.root, self.repo_id, self.endpoint, self.commit[:12])
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the app ---------------------------------------------------------------------------------------------

    def _build_app(self):
        from starlette.applications import Starlette
        from starlette.routing import Route

        repo = "/{namespace}/{name}"
        routes = [
            Route("/datasets" + repo + "/resolve/{rev}/{path:path}", self._resolve, methods=["GET", "HEAD"]),
            Route("/api/datasets" + repo, self._revision_info, methods=["GET"]),
            Route("/api/datasets" + repo + "/revision/{rev}", self._revision_info, methods=["GET"]),
            Route("/api/datasets" + repo + "/tree/{rev}", self._tree, methods=["GET"]),
            Route("/api/datasets" + repo + "/tree/{rev}/{path:path}", self._tree, methods=["GET"]),
            Route("/api/datasets" + repo + "/paths-info/{rev}", self._paths_info, methods=["POST"]),
            Route("/api/datasets" + repo + "/refs", self._refs, methods=["GET"]),
        ]
        return Starlette(routes=routes)

    def _record(self, request, kind: str, path: str, status: int) -> None:
        with self._lock:
            self.counts[(request.method, kind)] += 1
            self.requests.append(RequestRecord(request.method, kind, path, request.headers.get("range"), status))

    @staticmethod
    def _error(status: int, code: str, message: str, extra: dict[str, str] | None = None):
        from starlette.responses import JSONResponse

        headers = {"X-Error-Code": code, "X-Error-Message": message, **(extra or {})}
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def _check(self, request, rev: str | None, content: bool = False):
        """Auth, repo and revision checks shared by all endpoints; a response on failure, else None."""
        if self.token is not None and (content or self.gate_metadata):
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer "):
                return self._error(401, "GatedRepo", f"Access to dataset {self.repo_id} is restricted.")
            if auth[len("Bearer ") :] != self.token:
                return self._error(403, "GatedRepo", f"Access to dataset {self.repo_id} is restricted.")
        repo_id = f"{request.path_params['namespace']}/{request.path_params['name']}"
        if repo_id != self.repo_id:
            return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
        if rev is not None and rev not in (self.revision, self.commit):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return None

    async def _resolve(self, request):
        from starlette.responses import Response, StreamingResponse

        rev, path = request.path_params["rev"], request.path_params["path"]
        failure = self._check(request, rev, content=True)
        if failure is not None:
            self._record(request, "resolve", path, failure.status_code)
            return failure
        snap = self.snapshot
        entry = snap.files.get(path)
        if entry is None:
            self._record(request, "resolve", path, 404)
            return self._error(404, "EntryNotFound", f"{path} does not exist", {"X-Repo-Commit": snap.commit})
        headers = {
            "X-Repo-Commit": snap.commit,
            "ETag": f'"{entry.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if entry.lfs_sha256 is not None:
            headers["X-Linked-Etag"] = f'"{entry.etag}"'
            headers["X-Linked-Size"] = str(entry.size)
        start, end, status = 0, entry.size, 200
        range_header = request.headers.get("range")
        if range_header:
            parsed = parse_range(range_header, entry.size)
            if parsed is None:
                self._record(request, "resolve", path, 416)
                return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{entry.size}"})
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{entry.size}"
        headers["Content-Length"] = str(end - start)
        if request.method == "HEAD":
            self._record(request, "resolve", path, status)
            return Response(status_code=status, headers=headers)
        failed, cut_after = self._content_faults(path)
        if failed is not None:
            self._record(request, "resolve", path, failed)
            log.info("fault injection: HTTP %d for %s", failed, path)
            return self._error(failed, "InjectedFault", f"injected HTTP {failed}", {"X-Repo-Commit": snap.commit})
        self._record(request, "resolve", path, status)
        return StreamingResponse(
            stream_file(snap.root / path, start, end, cut_after), status_code=status, headers=headers
        )

    async def _revision_info(self, request):
        from starlette.responses import JSONResponse

        rev = request.path_params.get("rev", self.revision)
        failure = self._check(request, rev)
        self._record(request, "revision", "", failure.status_code if failure else 200)
        if failure is not None:
            return failure
        snap = self.snapshot
        blobs = request.query_params.get("blobs", "").lower() == "true"
        siblings = []
        for entry in snap.files.values():
            sib: dict = {"rfilename": entry.path}
            if blobs:
                sib.update(size=entry.size, blobId=entry.blob_oid)
                if entry.lfs_sha256 is not None:
                    sib["lfs"] = {"sha256": entry.lfs_sha256, "size": entry.size, "pointerSize": entry.pointer_size}
            siblings.append(sib)
        return JSONResponse(
            {
                "_id": snap.commit[:24],
                "id": self.repo_id,
                "author": self.repo_id.split("/")[0],
                "sha": snap.commit,
                "lastModified": now_iso(),
                "private": False,
                "gated": "manual" if self.token is not None else False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(e.size for e in snap.files.values()),
            },
            headers={"X-Repo-Commit": snap.commit},
        )

    async def _tree(self, request):
        from starlette.responses import JSONResponse

        rev = request.path_params["rev"]
        path = request.path_params.get("path", "").strip("/")
        failure = self._check(request, rev)
        if failure is not None:
            self._record(request, "tree", path, failure.status_code)
            return failure
        snap = self.snapshot
        recursive = request.query_params.get("recursive", "").lower() == "true"
        expand = request.query_params.get("expand", "").lower() == "true"
        names = snap.list_tree(path, recursive)
        if names is None:
            self._record(request, "tree", path, 404)
            return self._error(404, "EntryNotFound", f"{path} does not exist on {rev}")
        page_size = min(self.page_size, 50) if expand else self.page_size
        try:
            offset = max(0, int(request.query_params.get("cursor", "0")))
        except ValueError:
            offset = 0
        page = names[offset : offset + page_size]
        date = now_iso()
        body = [
            snap.files[p].tree_json(expand, snap.commit, date) if p in snap.files else snap.directory_json(p)
            for p in page
        ]
        headers = {"X-Repo-Commit": snap.commit}
        if offset + page_size < len(names):
            next_url = request.url.include_query_params(cursor=str(offset + page_size))
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._record(request, "tree", path, 200)
        return JSONResponse(body, headers=headers)

    async def _paths_info(self, request):
        from starlette.responses import JSONResponse

        rev = request.path_params["rev"]
        failure = self._check(request, rev)
        self._record(request, "paths-info", "", failure.status_code if failure else 200)
        if failure is not None:
            return failure
        form = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True)
        expand = form.get("expand", ["false"])[-1].lower() == "true"
        snap = self.snapshot
        date = now_iso()
        out = []
        for raw in form.get("paths", []):
            p = raw.strip("/")
            if p in snap.files:
                out.append(snap.files[p].tree_json(expand, snap.commit, date))
            elif p in snap.directories:
                out.append(snap.directory_json(p))
        return JSONResponse(out, headers={"X-Repo-Commit": snap.commit})

    async def _refs(self, request):
        from starlette.responses import JSONResponse

        failure = self._check(request, None)
        self._record(request, "refs", "", failure.status_code if failure else 200)
        if failure is not None:
            return failure
        branch = {"name": self.revision, "ref": f"refs/heads/{self.revision}", "targetCommit": self.commit}
        return JSONResponse({"branches": [branch], "tags": [], "converts": []})


@contextmanager
def serve_repo(root: Path, **options: Any) -> Iterator[HubServer]:
    """Serve `root` in a background thread for the duration of the block; yields the started `HubServer`.

    `options` are `HubServer`'s (repo_id, revision, token, port, page_size, gate_metadata).
    """
    server = HubServer(root, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["LFS_MIN_SIZE", "LFS_SUFFIXES", "HubServer", "RepoEntry", "RequestRecord", "serve_repo"]
