"""A minimal LLM-like Ray Serve app to put serve-gateway in front of.

It answers OpenAI-style requests with a fake model: `POST /llm/v1/chat/completions`
returns one JSON completion, or, with `"stream": true` (or `Accept:
text/event-stream`), an SSE token stream of `data: {...}` frames ending in
`data: [DONE]`, the framing Ray Serve LLM uses. Replace `generate` with a real
model.

Run it locally:
    serve run serve_app:deployment --route-prefix /llm     # from this folder
    curl -N localhost:8000/llm/v1/chat/completions -d '{"stream": true}'

On Kubernetes, rayservice.yaml deploys it as `import_path: serve_app:deployment`
on route `/llm`.
"""

import asyncio
import json
import time
import uuid

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse


@serve.deployment(
    # Admission: serve-gateway sizes its limit as max_ongoing_requests x RUNNING
    # replicas (read from the dashboard), and its queue from max_queued_requests.
    max_ongoing_requests=8,
    max_queued_requests=16,
    ray_actor_options={"num_cpus": 0.1},
)
class LLMServer:
    def __init__(self, tokens: int = 8, token_interval_s: float = 0.02):
        self.tokens = tokens
        self.interval = token_interval_s

    async def generate(self, prompt: str):
        for i in range(self.tokens):
            await asyncio.sleep(self.interval)  # a real model's decode step
            yield f"tok{i} "

    async def __call__(self, request: Request):
        body = {}
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                body = {}
        prompt = json.dumps(body.get("messages", body.get("prompt", "")))
        rid = request.headers.get("x-request-id") or str(uuid.uuid4())
        stream = body.get("stream") is True or "text/event-stream" in request.headers.get("accept", "")
        if stream:
            return StreamingResponse(self.sse(rid, prompt), media_type="text/event-stream")
        text = "".join([t async for t in self.generate(prompt)])
        return JSONResponse(
            {
                "id": rid,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "fake",
                "path": request.url.path,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            }
        )

    async def sse(self, rid: str, prompt: str):
        # A client that disconnects cancels this generator (asyncio.CancelledError):
        # Serve frees the replica slot at once.
        i = 0
        async for token in self.generate(prompt):
            chunk = {"id": rid, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": token}}], "index": i}
            yield "data: " + json.dumps(chunk, separators=(",", ":")) + "\n\n"
            i += 1
        yield "data: [DONE]\n\n"


deployment = LLMServer.bind()
