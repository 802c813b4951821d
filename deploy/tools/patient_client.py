"""A patient of the /api/v1 API (register → token → consent → upload → follow), for the
traffic simulator and the load test. Standard library + httpx only; no Django import."""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, field

import httpx

# Statuses after which nothing changes without a physician (`predicted` is final when
# explanations are off; `--expect-explanation` waits for `explained`).
FINAL = {"explained", "reviewed", "failed"}
PREDICTED = {"predicted", "explaining", "explained", "reviewed"}


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
        self.http = httpx.Client(base_url=base_url.rstrip("/") + "/api/v1", timeout=timeout)

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
        """Poll the study until final (or predicted, when not waiting for the explanation)."""
        line = Timeline(study_id=study_id, status="", uploaded_s=time.monotonic() - started)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self._ok(self.http.get(f"/studies/{study_id}"))
            now = time.monotonic() - started
            line.status = body["status"]
            if not line.statuses or line.statuses[-1] != line.status:
                line.statuses.append(line.status)
            if body.get("prediction") and line.predicted_s is None:
                line.predicted_s, line.label = now, body["prediction"]["label"]
            if body.get("explanation") and line.explained_s is None:
                line.explained_s = now
            done = line.status in FINAL or (not wait_explanation and line.status in PREDICTED)
            if done:
                line.final_s = now
                return line
            time.sleep(poll_s)
        return line

    @staticmethod
    def _ok(response: httpx.Response) -> dict:
        if response.status_code >= 400:
            raise RuntimeError(
                f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:300]}"
            )
        return response.json() if response.content else {}


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
