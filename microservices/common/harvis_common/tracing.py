"""W3C trace context across the fleet, and OpenTelemetry spans when asked for.

Always on (it costs two random numbers and a context variable per request): every request
has a trace id and a span id, taken from the caller's `traceparent` (nginx's, the gateway's,
another service's) or minted; they go into every JSON log line next to `request_id`
(logging.py) and out on calls to other services and the model server as `traceparent`
(`outbound_headers()`, or a client span's `.traceparent`).

Off by default, on with the standard variables: `OTEL_TRACES_EXPORTER=otlp` or an
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (and not
`OTEL_SDK_DISABLED=true` / `OTEL_TRACES_EXPORTER=none`) make the spans real OpenTelemetry
spans, exported over OTLP/HTTP in batches (`OTEL_BSP_*`, `OTEL_TRACES_SAMPLER`,
`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` as the SDK reads them). The SDK is imported
only then. Our own provider is used, not the global one: FastAPI's built-in telemetry stays
off, so each hop has exactly one server span.
"""

from __future__ import annotations

import logging
import os
import random
from contextvars import ContextVar
from typing import Any, NamedTuple

log = logging.getLogger("harvis.tracing")

HEADER = "traceparent"
HEADER_LOWER = b"traceparent"

_HEX = frozenset("0123456789abcdef")
_getrandbits = random.getrandbits


class TraceIds(NamedTuple):
    trace_id: str  # 32 lower-case hex digits
    span_id: str  # 16
    flags: str  # 2 ("01": sampled)

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


current_trace: ContextVar[TraceIds | None] = ContextVar("current_trace", default=None)

_tracer: Any = None  # an OpenTelemetry Tracer when exporting, else None
_provider: Any = None


def new_trace_id() -> str:
    return f"{_getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    return f"{_getrandbits(64) or 1:016x}"


def parse_traceparent(raw: bytes | str | None) -> TraceIds | None:
    """The caller's context from a `traceparent` value; None when absent or malformed
    (W3C Trace Context: version 00 … fe, non-zero ids, lower-case hex)."""
    if not raw:
        return None
    value = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    value = value.strip()
    if len(value) < 55 or value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    version, trace_id, span_id, flags = value[:2], value[3:35], value[36:52], value[53:55]
    if version == "ff" or (version == "00" and len(value) != 55):
        return None
    if not _HEX.issuperset(version + trace_id + span_id + flags):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return TraceIds(trace_id, span_id, flags)


def _enabled_by_env() -> bool:
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    if exporter:
        if exporter != "otlp":
            log.warning("OTEL_TRACES_EXPORTER=%s is not supported (only otlp over HTTP): tracing off", exporter)
            return False
        return True
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure_tracing(service: str) -> bool:
    """Export spans when the OTEL_* variables ask for it; returns whether it does. Safe to
    call more than once (the first configuration stays)."""
    global _tracer, _provider
    if _tracer is not None:
        return True
    if not _enabled_by_env():
        return False
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol and protocol != "http/protobuf":
        log.warning("OTLP protocol %s is not supported (only http/protobuf): using http/protobuf", protocol)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    _provider = TracerProvider(resource=Resource.create(attributes))
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _tracer = _provider.get_tracer("harvis")
    log.info("tracing on: spans exported over OTLP/HTTP")
    return True


def tracing_enabled() -> bool:
    return _tracer is not None


_KINDS: dict[str, Any] = {}


def _otel_kind(kind: str) -> Any:
    if not _KINDS:
        from opentelemetry.trace import SpanKind

        _KINDS.update(server=SpanKind.SERVER, client=SpanKind.CLIENT, internal=SpanKind.INTERNAL)
    return _KINDS[kind]


class Span:
    """One hop's span: its ids (always), and the OpenTelemetry span when exporting."""

    __slots__ = ("_otel", "ids")

    def __init__(self, ids: TraceIds, otel: Any = None) -> None:
        self.ids = ids
        self._otel = otel

    @property
    def traceparent(self) -> str:
        return self.ids.traceparent

    @property
    def recording(self) -> bool:
        """An OpenTelemetry span is being recorded (attributes are worth setting)."""
        return self._otel is not None

    def set(self, key: str, value: Any) -> None:
        if self._otel is not None and value is not None:
            self._otel.set_attribute(key, value)

    def rename(self, name: str) -> None:
        if self._otel is not None:
            self._otel.update_name(name)

    def end(self, status: int | None = None, error: str | None = None) -> None:
        otel = self._otel
        if otel is None:
            return
        self._otel = None
        if status is not None:
            otel.set_attribute("http.response.status_code", status)
        if error is not None or (status is not None and status >= 500):
            from opentelemetry.trace import Status, StatusCode

            otel.set_status(Status(StatusCode.ERROR, error))
        otel.end()


def start_span(
    name: str, *, kind: str = "internal", parent: TraceIds | None = None, attributes: dict[str, Any] | None = None
) -> Span:
    """A span under `parent` (default: the current one; none: a new trace). It is not made
    current: a server span is, by the middleware (`activate`); a client span's `.traceparent`
    goes on the outgoing request."""
    if parent is None:
        parent = current_trace.get()
    if _tracer is None:
        if parent is None:
            return Span(TraceIds(new_trace_id(), new_span_id(), "01"))
        return Span(TraceIds(parent.trace_id, new_span_id(), parent.flags))
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    context = None
    if parent is not None:
        remote = SpanContext(
            int(parent.trace_id, 16), int(parent.span_id, 16), True, TraceFlags(int(parent.flags, 16) & 1)
        )
        context = set_span_in_context(NonRecordingSpan(remote))
    otel = _tracer.start_span(name, context=context, kind=_otel_kind(kind), attributes=attributes)
    sc = otel.get_span_context()
    return Span(TraceIds(f"{sc.trace_id:032x}", f"{sc.span_id:016x}", f"{int(sc.trace_flags):02x}"), otel)


def server_span(name: str, raw_traceparent: bytes | str | None, attributes: dict[str, Any] | None = None) -> Span:
    """The span of a request this process serves, under the caller's `traceparent`."""
    parent = parse_traceparent(raw_traceparent)
    if parent is None:
        # A new trace: not under whatever the context holds (e.g. the previous request's).
        if _tracer is None:
            return Span(TraceIds(new_trace_id(), new_span_id(), "01"))
        otel = _tracer.start_span(name, context=_empty_context(), kind=_otel_kind("server"), attributes=attributes)
        sc = otel.get_span_context()
        return Span(TraceIds(f"{sc.trace_id:032x}", f"{sc.span_id:016x}", f"{int(sc.trace_flags):02x}"), otel)
    return start_span(name, kind="server", parent=parent, attributes=attributes)


def _empty_context() -> Any:
    from opentelemetry.context import Context

    return Context()


def unrecorded_span(raw_traceparent: bytes | str | None) -> Span:
    """Ids for the logs, never an exported span: probes and scrapes (`/health`, `/ready`,
    `/metrics`) would otherwise fill the traces every few seconds."""
    parent = parse_traceparent(raw_traceparent)
    if parent is None:
        return Span(TraceIds(new_trace_id(), new_span_id(), "01"))
    return Span(TraceIds(parent.trace_id, new_span_id(), parent.flags))


def outbound_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """`headers` plus the current `traceparent` (a call made while serving a request)."""
    out = dict(headers or {})
    ids = current_trace.get()
    if ids is not None:
        out[HEADER] = ids.traceparent
    return out
