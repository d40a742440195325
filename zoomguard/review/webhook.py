"""The live path from Label Studio: its annotation webhooks become ReviewDecisions on the decisions topic.

Label Studio posts each webhook once and gives up after `WEBHOOK_TIMEOUT` (1 s by default), so the answer
cannot wait for the broker: a decision is answered 200 once it is durably spooled (spool.py), and the
spool's flusher publishes it when the broker acknowledges. 507/503 only when it cannot even be spooled
(the spool is full, the disk is full or unwritable). Skipped annotations and other actions get 200
(nothing to keep), malformed bodies 4xx. `WebhookApp.handle` decides the answer from method, path,
headers and body (no sockets, unit-tested with a fake `accept`); `WebhookServer` puts it behind the
stdlib's threading HTTP server; `WebhookService` runs spool, flusher and server together.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import structlog

from zoomguard.errors import BadInputError, UnavailableError
from zoomguard.review.labelstudio import decisions_from_webhook
from zoomguard.review.settings import ReviewSettings
from zoomguard.review.spool import Connect, DecisionSpool, SpoolFlusher, SpoolRefused
from zoomguard.schemas.review import ReviewDecision

log = structlog.get_logger("zoomguard.review.webhook")

# Takes the decisions of one request for good (the spool), or raises SpoolRefused / UnavailableError.
Accept = Callable[[list[ReviewDecision]], object]
# (healthy, details) for GET /health.
Health = Callable[[], tuple[bool, dict[str, Any]]]
HEALTH_PATH = "/health"


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


class WebhookApp:
    """Request -> Reply; taking the decisions is injected (the real `accept` spools them durably)."""

    def __init__(
        self,
        settings: ReviewSettings,
        accept: Accept,
        clock: Callable[[], datetime] | None = None,
        health: Health | None = None,
    ):
        self._settings = settings
        self._accept = accept
        self._clock = clock or (lambda: datetime.now(UTC))
        self._health = health
        token = settings.webhook_token
        self._token = token.get_secret_value().encode() if token is not None else None

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None) -> Reply:
        """`headers` have lower-case names; `body` is None when there is none to read."""
        route = path.split("?", 1)[0]
        if method == "GET" and route == HEALTH_PATH:
            healthy, details = self._health() if self._health is not None else (True, {})
            return Reply(200 if healthy else 503, {"status": "ok" if healthy else "unhealthy", **details})
        if route != self._settings.webhook_path:
            return Reply(
                404, {"error": "not_found", "message": f"post Label Studio webhooks to {self._settings.webhook_path}"}
            )
        if method != "POST":
            return Reply(405, {"error": "method_not_allowed", "message": "use POST"})
        if not self._authorized(headers):
            return Reply(
                401, {"error": "unauthorized", "message": f"missing or wrong {self._settings.webhook_token_header}"}
            )
        if body is None:
            return Reply(400, {"error": "no_body", "message": "a JSON body is required"})
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return Reply(400, {"error": "invalid_json", "message": str(exc)[:200]})
        try:
            result = decisions_from_webhook(payload, now=self._clock())
        except BadInputError as exc:
            return Reply(422, {"error": "bad_payload", "message": str(exc)})
        ignored = [{"where": s.where, "reason": s.reason, "detail": s.detail} for s in result.ignored]
        if not result.decisions:
            log.info("webhook ignored", action=result.action, reasons=[s.reason for s in result.ignored])
            return Reply(200, {"status": "ignored", "action": result.action, "ignored": ignored})
        event_ids = [d.event_id for d in result.decisions]
        try:
            self._accept(result.decisions)
        except SpoolRefused as exc:
            log.warning("webhook refused", action=result.action, event_ids=event_ids, error=exc.error)
            return Reply(exc.status, {"error": exc.error, "message": str(exc)})
        except UnavailableError as exc:
            log.warning("webhook refused", action=result.action, event_ids=event_ids, error="unavailable")
            return Reply(503, {"error": "unavailable", "message": str(exc)})
        log.info("webhook accepted", action=result.action, event_ids=event_ids)
        return Reply(200, {"status": "accepted", "action": result.action, "event_ids": event_ids, "ignored": ignored})

    def body_problem(self, headers: Mapping[str, str]) -> Reply | None:
        """Checked before reading: the body must announce its length and stay under the limit."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return Reply(411, {"error": "length_required", "message": "chunked bodies are not accepted"})
        raw = headers.get("content-length")
        if raw is None:
            return Reply(411, {"error": "length_required", "message": "Content-Length is required"})
        try:
            length = int(raw)
        except ValueError:
            return Reply(400, {"error": "bad_length", "message": "Content-Length is not a number"})
        if length < 0:
            return Reply(400, {"error": "bad_length", "message": "Content-Length is negative"})
        if length > self._settings.webhook_max_body_bytes:
            limit = self._settings.webhook_max_body_bytes
            return Reply(413, {"error": "too_large", "message": f"body of {length} bytes; the limit is {limit}"})
        return None

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        if self._token is None:
            return True
        given = headers.get(self._settings.webhook_token_header.lower())
        return given is not None and hmac.compare_digest(given.encode(), self._token)


class WebhookServer:
    """The app on a ThreadingHTTPServer: `start()` serves in a thread, `stop()` shuts down and joins."""

    def __init__(self, app: WebhookApp, settings: ReviewSettings, host: str | None = None, port: int | None = None):
        handler = _handler_class(app, settings.webhook_read_timeout_s)
        self._server = ThreadingHTTPServer(
            (host or settings.webhook_host, settings.webhook_port if port is None else port), handler
        )
        self._server.daemon_threads = False  # stop() lets requests in flight finish (each closes its connection)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> WebhookServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="review-webhook", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever, which never ran otherwise
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


class WebhookService:
    """What `zoomguard review webhook` runs: the spool, its flusher and the HTTP server, started and stopped together.

    Leftover spool files of a previous run are published first: newer files sort after them.
    """

    def __init__(self, settings: ReviewSettings, connect: Connect, host: str | None = None, port: int | None = None):
        self.spool = DecisionSpool.open(
            Path(settings.webhook_spool_dir),
            max_files=settings.webhook_spool_max_files,
            max_bytes=settings.webhook_spool_max_bytes,
        )
        self.flusher = SpoolFlusher(
            self.spool,
            connect,
            backoff_s=settings.webhook_flush_backoff_s,
            backoff_max_s=settings.webhook_flush_backoff_max_s,
            stop_flush_s=settings.webhook_stop_flush_s,
        )
        self.app = WebhookApp(settings, self._accept, health=self._health)
        try:
            self.server = WebhookServer(self.app, settings, host=host, port=port)
        except BaseException:
            self.spool.close()
            raise

    @property
    def port(self) -> int:
        return self.server.port

    def _accept(self, decisions: list[ReviewDecision]) -> None:
        self.spool.write(decisions)
        self.flusher.wake()

    def _health(self) -> tuple[bool, dict[str, Any]]:
        """Unhealthy only when the flusher stopped (a restart fixes that); a down broker is not the pod's fault."""
        return self.flusher.alive, {"spool": self.spool.depth().as_dict(), "flusher": self.flusher.status()}

    def start(self) -> WebhookService:
        self.flusher.start()
        self.server.start()
        return self

    def stop(self) -> None:
        """No new requests; the flusher publishes what it can within `webhook_stop_flush_s`; the rest stays spooled."""
        try:
            self.server.stop()
        finally:
            try:
                self.flusher.stop()
            finally:
                self.spool.close()


def _handler_class(app: WebhookApp, read_timeout_s: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = read_timeout_s
        server_version = "zoomguard-review-webhook"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._reply(app.handle("GET", self.path, self._headers(), None))

        def do_POST(self) -> None:
            headers = self._headers()
            problem = app.body_problem(headers)
            if problem is not None:
                self.close_connection = True  # the unread body must not be parsed as the next request
                self._reply(problem)
                return
            try:
                body = self.rfile.read(int(headers["content-length"]))
            except TimeoutError:
                self.close_connection = True
                return
            self._reply(app.handle("POST", self.path, headers, body))

        def do_PUT(self) -> None:
            self.close_connection = True
            self._reply(app.handle("PUT", self.path, self._headers(), None))

        def _headers(self) -> dict[str, str]:
            return {name.lower(): value for name, value in self.headers.items()}

        def _reply(self, reply: Reply) -> None:
            data = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.wfile.write(data)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            # the method, the path without its query string, and the status: never headers (the token)
            path = (getattr(self, "path", "") or "").split("?", 1)[0]
            log.debug("webhook request", method=getattr(self, "command", None), path=path, status=str(code))

        def log_message(self, format: str, *args: Any) -> None:
            log.info("webhook http error", template=format)  # the arguments may quote the raw request line

    return Handler
