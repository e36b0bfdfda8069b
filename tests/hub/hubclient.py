"""A hub user, as tests drive one: log in through the hub's form, get an API token, start
the user's server, list kernelspecs and run code in a kernel over its websocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from typing import Any

import httpx

from tests.waiting import wait_until


class HubUser:
    def __init__(self, hub_url: str, name: str, password: str = "pw") -> None:
        self.hub_url, self.name = hub_url.rstrip("/"), name
        self.browser = httpx.Client(base_url=self.hub_url, timeout=30, follow_redirects=True)
        page = self.browser.get("/hub/login")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        form = {"username": name, "password": password}
        if xsrf:
            form["_xsrf"] = xsrf.group(1)
        resp = self.browser.post("/hub/login", data=form, follow_redirects=False)
        if resp.status_code != 302:
            raise RuntimeError(f"hub login of {name} answered {resp.status_code}")
        # a token through the hub's REST API, authorised by the login cookie
        resp = self.browser.post(f"/hub/api/users/{name}/tokens", json={"note": "test"},
                                 headers={"X-XSRFToken": self.browser.cookies.get("_xsrf", "")})
        resp.raise_for_status()
        self.token: str = resp.json()["token"]
        self.api = httpx.Client(base_url=self.hub_url, timeout=30,
                                headers={"Authorization": f"token {self.token}"})

    def start_server(self, timeout: float = 90) -> None:
        resp = self.api.post(f"/hub/api/users/{self.name}/server")
        if resp.status_code not in (201, 202, 400):  # 400: already running
            raise RuntimeError(f"server start: {resp.status_code} {resp.text}")
        def ready() -> bool:
            model = self.api.get(f"/hub/api/users/{self.name}").json()
            return bool((model.get("servers") or {}).get("", {}).get("ready"))

        wait_until(ready, timeout=timeout, what=f"{self.name}'s server to be ready", every=0.2)

    def kernelspecs(self) -> dict[str, Any]:
        resp = self.api.get(f"/user/{self.name}/api/kernelspecs")
        resp.raise_for_status()
        return resp.json()["kernelspecs"]

    def run(self, kernel_name: str, code: str, timeout: float = 60) -> str:
        """Start a kernel, execute ``code``, return its stdout; the kernel is shut down."""
        resp = self.api.post(f"/user/{self.name}/api/kernels", json={"name": kernel_name})
        resp.raise_for_status()
        kernel_id = resp.json()["id"]
        try:
            return asyncio.run(asyncio.wait_for(self._execute(kernel_id, code), timeout))
        finally:
            self.api.delete(f"/user/{self.name}/api/kernels/{kernel_id}")

    async def _execute(self, kernel_id: str, code: str) -> str:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        ws_url = self.hub_url.replace("http", "ws", 1) + \
            f"/user/{self.name}/api/kernels/{kernel_id}/channels"
        conn = await websocket_connect(HTTPRequest(
            ws_url, headers={"Authorization": f"token {self.token}"}))
        msg_id = uuid.uuid4().hex
        conn.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.name,
                       "session": uuid.uuid4().hex, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False}}))
        out: list[str] = []
        try:
            while True:
                raw = await conn.read_message()
                if raw is None:
                    raise RuntimeError("kernel websocket closed")
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    out.append(msg["content"]["text"])
                elif kind == "error":
                    raise RuntimeError("\n".join(msg["content"]["traceback"]))
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    return "".join(out)
        finally:
            conn.close()
            # wait for the closing handshake, so no socket is left for the garbage collector
            with contextlib.suppress(Exception):
                while await asyncio.wait_for(conn.read_message(), 5) is not None:
                    pass

    def close(self) -> None:
        self.api.close()
        self.browser.close()
