"""A small OTLP/HTTP trace receiver for the tests: what an OpenTelemetry collector does with
`POST /v1/traces` (protobuf `ExportTraceServiceRequest`, as the SDK's OTLP/HTTP exporter sends
it), keeping the spans in memory; `GET /spans` lists them as JSON, `DELETE /spans` forgets them.

Run it with a Python that has `opentelemetry-proto` (every service's venv does: the exporter
depends on it): `python tests/fakes/otlp_receiver.py --port 4318`. With `--discard` it only
counts what it receives (`GET /stats`), as cheaply as it can: for benchmarks, where a
collector would run on another machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind in ("string_value", "bool_value", "int_value", "double_value") else str(v)


def decode(body: bytes) -> list[dict[str, Any]]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    out = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.append(
                    {
                        "service": resource.get("service.name"),
                        "name": span.name,
                        "kind": KINDS.get(span.kind, str(span.kind)),
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "status": span.status.code,
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                    }
                )
    return out


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], discard: bool = False) -> None:
        super().__init__(address, Handler)
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.discard = discard
        self.requests = 0
        self.bytes = 0


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        if self.path != "/v1/traces":
            self._reply(404, b"", "text/plain")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.discard:
            with self.server.lock:
                self.server.requests += 1
                self.server.bytes += len(body)
            self._reply(200, b"", "application/x-protobuf")
            return
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        if not (self.headers.get("Content-Type") or "").startswith("application/x-protobuf"):
            self._reply(415, b"", "text/plain")
            return
        try:
            spans = decode(body)
        except Exception:  # not an ExportTraceServiceRequest
            self._reply(400, b"", "text/plain")
            return
        with self.server.lock:
            self.server.spans.extend(spans)
        self._reply(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, b"ok", "text/plain")
        elif self.path == "/stats":
            body = json.dumps({"requests": self.server.requests, "bytes": self.server.bytes}).encode()
            self._reply(200, body, "application/json")
        elif self.path == "/spans":
            with self.server.lock:
                body = json.dumps(self.server.spans).encode()
            self._reply(200, body, "application/json")
        else:
            self._reply(404, b"", "text/plain")

    def do_DELETE(self) -> None:
        with self.server.lock:
            self.server.spans.clear()
        self._reply(204, b"", "text/plain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--discard", action="store_true", help="count requests and bytes, keep nothing")
    args = parser.parse_args()
    Receiver((args.host, args.port), args.discard).serve_forever()


if __name__ == "__main__":
    main()
