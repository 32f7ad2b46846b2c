"""A FastAPI WebSocket app for serve-gateway's real-Ray tests (test/ray/).

Application (import path used by test/ray/apps/gateway-apps.yaml):
  wsapp  WsEcho (FastAPI ingress) on route_prefix /wsapp

- WebSocket /wsapp/ws/echo: accepts, then answers every text message `m` with
  `echo: m`; the message `whoami` is answered with this replica's
  {"app", "cluster", "replica", "path"} as JSON instead, and `close` makes
  the server close the connection with code 4000, reason "bye". Every open connection
  is one ongoing request of its replica for Serve (max_ongoing_requests).
- GET /wsapp/ping: {"app", "cluster", "replica"} (plain HTTP on the same app).
The cluster name comes from the SG_CLUSTER env var, as in conformance_app.py.
"""

import json
import os

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from ray import serve

from conformance_app import NO_CPU, _app_name, _replica_id

api = FastAPI()


@serve.deployment(ray_actor_options=NO_CPU)
@serve.ingress(api)
class WsEcho:
    # Not `self.app`: serve.ingress gives the class an `app` property (the FastAPI app).
    def __init__(self) -> None:
        self.cluster = os.environ.get("SG_CLUSTER", "")
        self.app_name = _app_name()
        self.replica = _replica_id()

    def _who(self) -> dict:
        return {"app": self.app_name, "cluster": self.cluster, "replica": self.replica}

    @api.get("/ping")
    async def ping(self) -> dict:
        return self._who()

    @api.websocket("/ws/echo")
    async def echo(self, ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                msg = await ws.receive_text()
                if msg == "whoami":
                    await ws.send_text(json.dumps(dict(self._who(), path=ws.scope.get("path", ""))))
                elif msg == "close":
                    await ws.close(code=4000, reason="bye")
                    return
                else:
                    await ws.send_text(f"echo: {msg}")
        except WebSocketDisconnect:
            pass


wsapp = WsEcho.bind()
