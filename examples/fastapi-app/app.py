"""An example FastAPI service that writes the JSON access log fastapi-exporter reads.

The log line is the reference guide's schema:
  {"timestamp": ..., "level": "INFO", "service": ..., "endpoint": "/api/users/1", "method": "GET",
   "status_code": 200, "duration_ms": 45.123, "message": "Request completed"}

It is written by a plain ASGI middleware, not by @app.middleware("http"): Starlette's
BaseHTTPMiddleware machinery behind that decorator cut this app's requests/s to 0.42x when
measured here, while a plain ASGI wrapper costs a few percent. Each line is one os.write() on an
O_APPEND descriptor, so several uvicorn/gunicorn workers can share one file without
interleaving lines.

Run:  ACCESS_LOG=/var/log/fastapi/access.log python3 -m uvicorn app:app --workers 2
"""

import asyncio
import datetime
import json
import os
import time

import uuid

from fastapi import APIRouter, FastAPI, HTTPException


class JsonAccessLog:
    """ASGI middleware: one JSON line per HTTP request, after the response is sent."""

    def __init__(self, app, path, service):
        self.app = app
        self.service = service
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        # Read before the app runs: routing to a mounted sub-application rewrites the scope
        # in place (its path loses the mount prefix).
        path, method = scope["path"], scope["method"]
        status = 500  # what the client sees if the app raises before responding

        async def send_and_remember_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_remember_status)
        finally:
            duration_ms = (time.perf_counter() - start) * 1000.0
            line = json.dumps({
                "timestamp": datetime.datetime.now(datetime.timezone.utc)
                .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "level": "ERROR" if status >= 500 else "INFO",
                "service": self.service,
                "endpoint": path,
                "method": method,
                "status_code": status,
                "duration_ms": round(duration_ms, 3),
                "message": "Request completed",
            }, separators=(",", ":"))
            os.write(self.fd, (line + "\n").encode())


app = FastAPI()

USERS = {i: {"id": i, "name": f"user{i}"} for i in range(1, 1001)}


@app.get("/api/users/{user_id}")
async def get_user(user_id: int):
    if user_id not in USERS:
        raise HTTPException(status_code=404, detail="no such user")
    return USERS[user_id]


@app.post("/api/items", status_code=201)
async def create_item():
    return {"created": True}


@app.get("/api/items/{item_id}/reviews/{review_id}")
async def get_review(item_id: int, review_id: str):
    return {"item": item_id, "review": review_id}


@app.get("/api/slow")
async def slow(ms: int = 50):
    await asyncio.sleep(ms / 1000.0)
    return {"slept_ms": ms}


@app.get("/api/error")
async def error():
    raise RuntimeError("a bug")  # uvicorn answers 500


orders = APIRouter(prefix="/api/orders")


@orders.get("/{order_id}")
async def get_order(order_id: int):
    return {"order": order_id}


@orders.get("/{order_id}/lines/{line_no}")
async def get_order_line(order_id: int, line_no: int):
    return {"order": order_id, "line": line_no}


app.include_router(orders)


@app.get("/api/sessions/{session_id}")
async def get_session(session_id: uuid.UUID):
    return {"session": str(session_id)}


@app.get("/files/{file_path:path}")
async def get_file(file_path: str):
    return {"file": file_path}


# A mounted sub-application: absent from the parent's OpenAPI document.
admin = FastAPI()


@admin.get("/stats")
async def admin_stats():
    return {"requests": 0}


app.mount("/admin", admin)


@app.get("/health")
async def health():
    return {"ok": True}


if os.environ.get("ACCESS_LOG"):
    app = JsonAccessLog(app, os.environ["ACCESS_LOG"],
                        os.environ.get("SERVICE_NAME", "fastapi-backend"))
