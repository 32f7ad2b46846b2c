"""Serve apps for serve-gateway's real-Ray tests (test/ray/).

Every app here behaves like the simulator's generic app (docs/simulator.md,
"Generic app"), so the same conformance cases (test/conformance/serve-cases.ts)
run against real Ray Serve and against the simulator:

- any path: a JSON reply {app, cluster, proxy, replica, method, path, query,
  request_id, body_bytes} after `latency_ms` (query parameter, default 0);
- a path ending in /stream, an `Accept: text/event-stream` header or a JSON
  body with "stream": true: an SSE token stream of `tokens` frames (default 4)
  `data: {"id","index","token"}` every `interval_ms` (default 1), then
  `data: [DONE]`;
- a path ending in /echo: the request body streamed back;
- a path ending in /_stats: this replica's counters (not a request of its own:
  it is not counted), used by the tests' hooks.

Applications (import paths used by test/ray/apps/*.yaml):
  llm   Tokenizer + LLMServer (ingress)       conformance: /llm
  tiny  TinyServer                            conformance: /tiny
  web   WebApp                                conformance: /
  slow  SlowServer, counts concurrent requests in a detached actor
        (`GET /slow/_stats` → {"current", "max"}; `POST /slow/_reset`)
  fail  FailServer: raises on every request (Serve answers 500)
The cluster name in replies comes from the SG_CLUSTER env var (runtime_env).
"""

import asyncio
import json
import os

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

SSE = "text/event-stream"
MAX_PARSED_BODY = 64 * 1024


def _int_param(request: Request, name: str, default: int) -> int:
    v = request.query_params.get(name)
    if v is None:
        return default
    try:
        n = float(v)
    except ValueError:
        return default
    return int(n) if n >= 0 else default


def _full_path(request: Request) -> str:
    # Serve sets root_path to the route prefix and leaves path as the full
    # original path (starlette >= 0.33); older stacks stripped the prefix.
    path = request.scope.get("path", "/")
    root = request.scope.get("root_path", "")
    if root and not path.startswith(root):
        path = root + path
    return path


def _replica_id() -> str:
    try:
        ctx = serve.get_replica_context()
        rid = getattr(ctx, "replica_id", None)
        if rid is not None:
            return getattr(rid, "unique_id", None) or str(rid)
        return getattr(ctx, "replica_tag", "") or ""
    except Exception:
        return ""


def _app_name() -> str:
    try:
        return serve.get_replica_context().app_name
    except Exception:
        return ""


class Generic:
    """The generic app behaviour, shared by every deployment below."""

    def __init__(self) -> None:
        self.cluster = os.environ.get("SG_CLUSTER", "")
        self.app = _app_name()
        self.replica = _replica_id()
        self.stats = {"requests": 0, "completed": 0, "cancelled": 0, "in_flight": 0, "max_in_flight": 0}

    async def __call__(self, request: Request) -> Response:
        path = _full_path(request)
        if path.endswith("/_stats"):
            return JSONResponse(dict(self.stats, app=self.app, replica=self.replica))
        self.stats["requests"] += 1
        self.stats["in_flight"] += 1
        self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])
        streaming = False
        try:
            await self.before(request)
            latency_ms = _int_param(request, "latency_ms", 0)
            if path.endswith("/echo"):
                body = await request.body()
                if latency_ms:
                    await asyncio.sleep(latency_ms / 1000)
                self.stats["completed"] += 1
                return Response(body, media_type=request.headers.get("content-type", "application/octet-stream"))
            body = await request.body()
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
            if self.wants_stream(path, request, body):
                streaming = True
                tokens = _int_param(request, "tokens", 4)
                interval_ms = _int_param(request, "interval_ms", 1)
                rid = request.headers.get("x-request-id", "")
                return StreamingResponse(self.tokens(rid, tokens, interval_ms), media_type=SSE)
            self.stats["completed"] += 1
            return JSONResponse(
                {
                    "app": self.app,
                    "cluster": self.cluster,
                    "proxy": request.headers.get("host", ""),
                    "replica": self.replica,
                    "method": request.method,
                    "path": path,
                    "query": request.scope.get("query_string", b"").decode("latin-1"),
                    "request_id": request.headers.get("x-request-id", ""),
                    "body_bytes": len(body),
                }
            )
        except asyncio.CancelledError:
            self.stats["cancelled"] += 1
            raise
        finally:
            if not streaming:
                self.stats["in_flight"] -= 1
                await self.after()

    async def before(self, request: Request) -> None:
        pass

    async def after(self) -> None:
        pass

    @staticmethod
    def wants_stream(path: str, request: Request, body: bytes) -> bool:
        if path.endswith("/stream"):
            return True
        if SSE in request.headers.get("accept", ""):
            return True
        if body and len(body) <= MAX_PARSED_BODY and b'"stream"' in body and "json" in request.headers.get("content-type", ""):
            try:
                doc = json.loads(body)
            except ValueError:
                return False
            return isinstance(doc, dict) and doc.get("stream") is True
        return False

    async def tokens(self, rid: str, n: int, interval_ms: int):
        try:
            for i in range(n):
                yield "data: " + json.dumps({"id": rid, "index": i, "token": f"tok{i} "}, separators=(",", ":")) + "\n\n"
                await asyncio.sleep(interval_ms / 1000)
            yield "data: [DONE]\n\n"
            self.stats["completed"] += 1
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away: Serve cancels the replica's task (499).
            self.stats["cancelled"] += 1
            raise
        finally:
            self.stats["in_flight"] -= 1
            await self.after()


NO_CPU = {"num_cpus": 0}


@serve.deployment(ray_actor_options=NO_CPU)
class Tokenizer:
    def __call__(self, text: str) -> list:
        return text.split()


@serve.deployment(ray_actor_options=NO_CPU)
class LLMServer(Generic):
    def __init__(self, tokenizer=None) -> None:
        super().__init__()
        self.tokenizer = tokenizer


@serve.deployment(ray_actor_options=NO_CPU)
class TinyServer(Generic):
    pass


@serve.deployment(ray_actor_options=NO_CPU)
class WebApp(Generic):
    pass


@ray.remote(num_cpus=0)
class ConcurrencyCounter:
    """Counts requests in flight across all replicas of one app."""

    def __init__(self) -> None:
        self.current = 0
        self.max = 0
        self.total = 0

    def enter(self) -> None:
        self.current += 1
        self.total += 1
        self.max = max(self.max, self.current)

    def exit(self) -> None:
        self.current -= 1

    def get(self) -> dict:
        return {"current": self.current, "max": self.max, "total": self.total}

    def reset(self) -> dict:
        before = self.get()
        self.max = self.current
        self.total = 0
        return before


@serve.deployment(ray_actor_options=NO_CPU)
class SlowServer(Generic):
    """Generic app whose requests default to 300 ms, counted app-wide."""

    def __init__(self) -> None:
        super().__init__()
        self.counter = ConcurrencyCounter.options(
            name=f"sg-counter-{self.app}", namespace="serve-gateway", lifetime="detached", get_if_exists=True
        ).remote()

    async def __call__(self, request: Request) -> Response:
        path = _full_path(request)
        if path.endswith("/_stats"):
            return JSONResponse(await self.counter.get.remote())
        if path.endswith("/_reset"):
            return JSONResponse(await self.counter.reset.remote())
        if "latency_ms" not in request.query_params:
            request.scope["query_string"] = (request.scope.get("query_string", b"") + b"&latency_ms=300").lstrip(b"&")
            request = Request(request.scope, request.receive)
        return await super().__call__(request)

    async def before(self, request: Request) -> None:
        await self.counter.enter.remote()

    async def after(self) -> None:
        await self.counter.exit.remote()


@serve.deployment(ray_actor_options=NO_CPU)
class FailServer:
    async def __call__(self, request: Request) -> Response:
        raise RuntimeError("this app always fails")


llm = LLMServer.bind(Tokenizer.bind())
tiny = TinyServer.bind()
web = WebApp.bind()
slow = SlowServer.bind()
fail = FailServer.bind()
