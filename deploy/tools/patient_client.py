"""A patient of the /api/v1 API (register → token → consent → upload → follow), for the
traffic simulator, the load test and the latency benchmark. Standard library + httpx (+ the
`websockets` client when installed); no Django import.

A study is followed as the apps do: over its WebSocket (`ws/studies/<id>/`, JWT in the
Authorization header), which costs the server nothing while the client waits, with one API read
once the study is final. Polling the API (4 requests a second per waiting study, each one
authenticated and audited) is only the fallback, backing off from 0.25 s to 2 s: with 40 studies
in flight the old fixed 0.25 s poll kept a core of the embedded server busy answering it.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# Statuses after which nothing changes without a physician (`predicted` is final when
# explanations are off; `--expect-explanation` waits for `explained`).
FINAL = {"explained", "reviewed", "failed"}
PREDICTED = {"predicted", "explaining", "explained", "reviewed"}
EXPLAINED = {"explained", "reviewed"}


class SocketUnavailable(Exception):
    """No status WebSocket could be followed for a study (the client polls instead)."""


@dataclass
class Timeline:
    """One upload, followed until it is final. Times are seconds since the upload started."""

    study_id: str
    status: str
    uploaded_s: float
    predicted_s: float | None = None
    explained_s: float | None = None
    final_s: float | None = None
    label: str | None = None
    duplicate: bool = False
    statuses: list[str] = field(default_factory=list)


class PatientClient:
    def __init__(self, base_url: str, *, timeout: float = 60.0):
        base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=base_url + "/api/v1", timeout=timeout)
        self.ws_base = "ws" + base_url.removeprefix("http")  # http -> ws, https -> wss
        self.socket_fallbacks = 0  # studies followed by polling because no socket could be had

    def close(self) -> None:
        self.http.close()

    def sign_up(self, username: str | None = None) -> str:
        """Register a new patient, log in with JWT and accept the current disclaimer."""
        username = username or f"sim-{secrets.token_hex(6)}"
        password = secrets.token_urlsafe(18)
        self._ok(self.http.post("/auth/register", json={"username": username, "password": password}))
        token = self._ok(self.http.post("/auth/token", json={"username": username, "password": password}))["access"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        version = self._ok(self.http.get("/consent"))["version"]
        self._ok(self.http.post("/consent", json={"version": version}))
        return username

    def upload(self, data: bytes, filename: str = "cxr.png") -> tuple[dict, float]:
        started = time.monotonic()
        response = self.http.post("/studies", files={"image": (filename, data, "application/octet-stream")})
        body = self._ok(response)
        body["duplicate"] = response.status_code == 200
        return body, started

    def follow(
        self, study_id: str, started: float, *, wait_explanation: bool, timeout: float = 600.0, poll_s: float = 0.25
    ) -> Timeline:
        """Follow the study until final (or predicted, when not waiting for the explanation): over
        its WebSocket, or by polling the API when no socket can be had."""
        line = Timeline(study_id=study_id, status="", uploaded_s=time.monotonic() - started)
        deadline = time.monotonic() + timeout
        try:
            self._follow_socket(line, started, deadline, wait_explanation)
        except SocketUnavailable:
            self.socket_fallbacks += 1
        self._poll(line, started, deadline, wait_explanation, poll_s)
        return line

    def _follow_socket(self, line: Timeline, started: float, deadline: float, wait_explanation: bool) -> None:
        """Status events until the study is done or the deadline passes; raises SocketUnavailable
        when no socket opens (no `websockets` package, refused, closed before the end)."""
        try:
            from websockets.exceptions import WebSocketException
            from websockets.sync.client import connect
        except ImportError as exc:
            raise SocketUnavailable("the websockets package is not installed") from exc
        url = self.ws_base + f"/ws/studies/{line.study_id}/"
        try:
            with connect(url, additional_headers={"Authorization": self.http.headers["Authorization"]}) as socket:
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        event = json.loads(socket.recv(timeout=left))
                    except TimeoutError:
                        return
                    now = time.monotonic() - started
                    self._record(line, event.get("status", ""), now)
                    if self._done(line.status, wait_explanation):
                        line.final_s = now
                        return
        except (OSError, WebSocketException) as exc:
            raise SocketUnavailable(str(exc)) from exc

    def _poll(self, line: Timeline, started: float, deadline: float, wait_explanation: bool, poll_s: float) -> None:
        """Read the study (once when the socket saw it done), backing off while it is not done."""
        while True:
            body = self._ok(self.http.get(f"/studies/{line.study_id}"))
            now = time.monotonic() - started
            self._record(line, body["status"], now)
            if body.get("prediction"):
                line.label = body["prediction"]["label"]
                line.predicted_s = line.predicted_s if line.predicted_s is not None else now
            if body.get("explanation") and line.explained_s is None:
                line.explained_s = now
            if self._done(line.status, wait_explanation):
                line.final_s = line.final_s if line.final_s is not None else now
                return
            if time.monotonic() + poll_s > deadline:
                return
            time.sleep(poll_s)
            poll_s = min(poll_s * 1.5, 2.0)

    @staticmethod
    def _record(line: Timeline, status: str, now: float) -> None:
        line.status = status
        if not line.statuses or line.statuses[-1] != status:
            line.statuses.append(status)
        if status in PREDICTED and line.predicted_s is None:
            line.predicted_s = now
        if status in EXPLAINED and line.explained_s is None:
            line.explained_s = now

    @staticmethod
    def _done(status: str, wait_explanation: bool) -> bool:
        return status in FINAL or (not wait_explanation and status in PREDICTED)

    @staticmethod
    def _ok(response: httpx.Response) -> dict:
        if response.status_code >= 400:
            raise RuntimeError(
                f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:300]}"
            )
        return response.json() if response.content else {}


IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".dcm"})  # what the upload API takes


def folder_images(folder: Path, suffixes=IMAGE_SUFFIXES) -> list[Path]:
    """The images of a <LABEL>/<image> tree (the label is each image's folder name), sorted."""
    return sorted(path for path in folder.glob("*/*") if path.suffix.lower() in suffixes)


def percentiles(values: list[float], points=(50, 95, 99)) -> dict[str, float | None]:
    """Nearest-rank percentiles in milliseconds (None when there are no values)."""
    ordered = sorted(values)
    out = {}
    for p in points:
        if not ordered:
            out[f"p{p}"] = None
            continue
        rank = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
        out[f"p{p}"] = round(ordered[rank] * 1000, 1)
    return out
