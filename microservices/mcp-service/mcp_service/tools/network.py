"""Network tools: DNS, reverse DNS, ping, whois, TLS, HTTP and TCP checks.

Every target goes through `targets.hostname` (strict grammar) and through the
SSRF policy (public addresses, or what MCP_SSRF_ALLOWLIST opens): where the
service connects to it, and for the DNS tools, whose questions and answers
must not map the internal network either (`dns_policy`). Connections go to the
vetted addresses, never to a second lookup. The one subprocess (ping) gets an
argument list, a vetted IP literal after `--`, and a time limit. The tools that
touch a target (ping, ssl_check, http_check, tcp_port_check per port) take from
the user's probe quota once the target has passed the policy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import ipaddress
import re
import shutil
import ssl
import time
from typing import Any, Literal

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver
import dns.reversename
from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import Field

from harvis_common.http_client import FetchError
from harvis_common.ssrf import SSRFBlocked, check_url

from ..dns_policy import check_name, check_reverse, filter_addresses
from ..registry import Args, Registry, Tool, ToolContext, ToolError
from ..targets import hostname, ip_literal, vetted_addresses

RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "SRV", "CAA", "PTR")


# ---------------------------------------------------------------- DNS


def parse_nameservers(setting: str) -> list[tuple[str, int]]:
    out = []
    for raw in setting.split(","):
        item = raw.strip()
        if not item:
            continue
        host, port = item, 53
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else 53
        elif item.count(":") == 1:
            host, _, p = item.partition(":")
            port = int(p)
        if ip_literal(host) is None:
            raise ValueError(f"MCP_DNS_NAMESERVERS: {item!r} is not an IP address")
        out.append((host, port))
    return out


def _resolver(ctx: ToolContext, nameserver: str | None) -> dns.asyncresolver.Resolver:
    configured = parse_nameservers(ctx.settings.mcp_dns_nameservers)
    if nameserver is not None:
        wanted = [ns for ns in configured if nameserver in (ns[0], f"{ns[0]}:{ns[1]}", f"[{ns[0]}]:{ns[1]}")]
        if not wanted:
            raise ToolError("nameserver must be one of the configured DNS servers (MCP_DNS_NAMESERVERS)")
        configured = wanted
    if configured:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in configured]
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.lifetime = 5.0
    resolver.timeout = 2.0
    return resolver


class DnsArgs(Args):
    name: str = Field(description="Domain name to look up, e.g. example.com", max_length=255)
    record_type: Literal["A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "SRV", "CAA", "PTR"] = Field(
        default="A", description="DNS record type"
    )
    nameserver: str | None = Field(
        default=None, description="One of the configured DNS servers (MCP_DNS_NAMESERVERS); default: the first"
    )


async def _query(resolver: dns.asyncresolver.Resolver, name: str, record_type: str) -> dns.resolver.Answer | None:
    """One query; None for NXDOMAIN, ToolError for a failure the caller should see."""
    try:
        return await resolver.resolve(name, record_type, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return None
    except dns.resolver.NoNameservers as exc:
        raise ToolError(f"no DNS server could answer: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    except dns.exception.Timeout:
        raise ToolError("DNS query timed out") from None
    except dns.exception.DNSException as exc:
        raise ToolError(f"DNS query failed: {exc}") from None


def _addresses(answer: dns.resolver.Answer | None) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    if answer is None or answer.rrset is None:
        return []
    return [ipaddress.ip_address(rdata.address) for rdata in answer.rrset]


async def dns_lookup(args: DnsArgs, ctx: ToolContext) -> dict[str, Any]:
    name = hostname(args.name, dns_name=True, allow_ip=False)
    policy = ctx.services.policy
    check_name(name, args.record_type, policy)
    resolver = _resolver(ctx, args.nameserver)
    withheld = 0
    if args.record_type in ("A", "AAAA"):
        answer = await _query(resolver, name, args.record_type)
        kept, withheld = filter_addresses(name, _addresses(answer), policy)
        records = [str(ip) for ip in kept]
    else:
        # Other records of a name whose addresses are all internal are the internal
        # network's too: ask for its addresses alongside and judge by them.
        answers = await asyncio.gather(
            _query(resolver, name, args.record_type),
            _query(resolver, name, "A"),
            _query(resolver, name, "AAAA"),
            return_exceptions=True,  # all three finish before a failure is reported
        )
        for failure in answers:
            if isinstance(failure, BaseException):
                raise failure
        answer, v4, v6 = answers  # type: ignore[misc]
        filter_addresses(name, _addresses(v4) + _addresses(v6), policy)  # type: ignore[arg-type]
        records = [rdata.to_text() for rdata in answer.rrset] if answer is not None and answer.rrset else []
    if answer is None:
        return {"name": name, "record_type": args.record_type, "status": "NXDOMAIN", "records": [], "withheld": 0}
    return {
        "name": name,
        "record_type": args.record_type,
        "status": "NOERROR",
        "ttl": answer.rrset.ttl if answer.rrset is not None else None,
        "records": records,
        "withheld": withheld,
    }


class ReverseDnsArgs(Args):
    ip: str = Field(description="IPv4 or IPv6 address", max_length=64)
    nameserver: str | None = Field(default=None, description="One of the configured DNS servers")


async def reverse_dns(args: ReverseDnsArgs, ctx: ToolContext) -> dict[str, Any]:
    ip = ip_literal(args.ip)
    if ip is None:
        raise ToolError("ip must be an IPv4 or IPv6 address (dotted decimal for IPv4)")
    check_reverse(ip, ctx.services.policy)  # before any query: internal addresses stay unasked
    resolver = _resolver(ctx, args.nameserver)
    rev = dns.reversename.from_address(str(ip))
    try:
        answer = await resolver.resolve(rev, "PTR")
        names = [r.to_text().rstrip(".") for r in answer]
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        names = []
    except dns.exception.Timeout:
        raise ToolError("DNS query timed out") from None
    except dns.exception.DNSException as exc:
        raise ToolError(f"DNS query failed: {exc}") from None
    return {"ip": str(ip), "pointer": rev.to_text(), "names": names}


# ---------------------------------------------------------------- ping

_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")
_LOSS = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received.*?([\d.]+)% packet loss")


class PingArgs(Args):
    target: str = Field(description="Host name or IP address", max_length=255)
    count: int = Field(default=3, ge=1, le=10, description="Echo requests to send")


async def ping(args: PingArgs, ctx: ToolContext) -> dict[str, Any]:
    host = hostname(args.target)
    addresses = await vetted_addresses(host, ctx.services.policy)
    binary = shutil.which("ping")
    if binary is None:
        raise ToolError("ping is not installed on this server")
    await ctx.services.quotas.take("probes", ctx.identity.user_id)
    ip = addresses[0]
    deadline = args.count + 2
    cmd = [binary, "-n", "-c", str(args.count), "-i", "0.2", "-W", "2", "-w", str(deadline), "--", ip]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
    )
    ctx.services.spawned.add(proc.pid)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=deadline + 3)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ToolError("ping timed out") from None
    finally:
        ctx.services.spawned.discard(proc.pid)
    text = out.decode(errors="replace")
    result: dict[str, Any] = {"target": host, "address": ip, "exit_code": proc.returncode}
    loss = _LOSS.search(text)
    if loss:
        result.update(transmitted=int(loss.group(1)), received=int(loss.group(2)), loss_percent=float(loss.group(3)))
    rtt = _RTT.search(text)
    if rtt:
        result.update(rtt_ms={"min": float(rtt.group(1)), "avg": float(rtt.group(2)), "max": float(rtt.group(3))})
    result["reachable"] = bool(loss and int(loss.group(2)) > 0)
    if proc.returncode not in (0, 1):
        result["error"] = err.decode(errors="replace").strip()[:500]
    return result


# ---------------------------------------------------------------- whois

_REFER = re.compile(r"^(?:refer|whois):\s*(\S+)\s*$", re.I | re.M)


async def _whois_query(ctx: ToolContext, server: str, query: str, vet: bool) -> str:
    port = ctx.settings.mcp_whois_port
    if vet:
        addresses = await vetted_addresses(hostname(server), ctx.services.policy, port)
        connect_to = addresses[0]
    else:
        connect_to = server
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(connect_to, port), timeout=5)
    except (OSError, TimeoutError) as exc:
        raise ToolError(f"cannot reach whois server {server}: {exc}") from None
    try:
        writer.write(query.encode("ascii") + b"\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(200_000), timeout=10)
        chunks = [data]
        while data and sum(map(len, chunks)) < 200_000:
            data = await asyncio.wait_for(reader.read(200_000), timeout=10)
            chunks.append(data)
    except TimeoutError:
        raise ToolError(f"whois server {server} did not answer in time") from None
    finally:
        writer.close()
    return b"".join(chunks)[:200_000].decode("utf-8", errors="replace")


class WhoisArgs(Args):
    query: str = Field(description="Domain name or IP address", max_length=255)


async def whois(args: WhoisArgs, ctx: ToolContext) -> dict[str, Any]:
    query = hostname(args.query)
    first_server = ctx.settings.mcp_whois_server
    text = await _whois_query(ctx, first_server, query, vet=False)  # configured: trusted
    servers = [first_server]
    refer = _REFER.search(text)
    if refer:
        nxt = refer.group(1).strip().lower()
        if nxt != first_server:
            text = await _whois_query(ctx, nxt, query, vet=True)  # from an answer: vetted
            servers.append(nxt)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip() and not key.startswith(("%", "#", " ")) and len(key) < 60:
            fields.setdefault(key.strip().lower(), value.strip())
    return {"query": query, "servers": servers, "fields": fields, "raw": text[:20_000]}


# ---------------------------------------------------------------- TLS


def _name(name: x509.Name) -> str:
    try:
        return name.rfc4514_string()
    except Exception:
        return str(name)


def _cert_info(der: bytes) -> dict[str, Any]:
    cert = x509.load_der_x509_certificate(der)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        san_list = [str(v) for v in sans.get_values_for_type(x509.DNSName)] + [
            str(v) for v in sans.get_values_for_type(x509.IPAddress)
        ]
    except x509.ExtensionNotFound:
        san_list = []
    not_after = cert.not_valid_after_utc
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return {
        "subject": _name(cert.subject),
        "common_name": str(cn[0].value) if cn else None,
        "issuer": _name(cert.issuer),
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": not_after.isoformat(),
        "days_left": (not_after - dt.datetime.now(dt.UTC)).days,
        "sans": san_list,
    }


async def _tls_connect(ip: str, port: int, server_name: str | None, verify: bool) -> dict[str, Any]:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(ip, port, ssl=context, server_hostname=server_name or ip), timeout=8
    )
    try:
        obj: ssl.SSLObject = writer.get_extra_info("ssl_object")
        leaf = obj.getpeercert(binary_form=True)
        chain: list[bytes] = []
        inner = getattr(obj, "_sslobj", None)
        getter = getattr(inner, "get_verified_chain" if verify else "get_unverified_chain", None)
        if getter is not None:
            try:
                chain = [c.public_bytes(ssl.ENCODING_DER) if hasattr(c, "public_bytes") else c for c in getter()]
            except Exception:
                chain = []
        return {
            "protocol": obj.version(),
            "cipher": obj.cipher()[0] if obj.cipher() else None,
            "leaf": leaf,
            "chain": chain,
        }
    finally:
        writer.close()


class SslArgs(Args):
    host: str = Field(description="Host name (or IP) serving TLS", max_length=255)
    port: int = Field(default=443, ge=1, le=65535)


async def ssl_check(args: SslArgs, ctx: ToolContext) -> dict[str, Any]:
    host = hostname(args.host)
    addresses = await vetted_addresses(host, ctx.services.policy, args.port)
    await ctx.services.quotas.take("probes", ctx.identity.user_id)
    ip = addresses[0]
    server_name = None if ip_literal(host) else host
    verified, verify_error = True, None
    try:
        info = await _tls_connect(ip, args.port, server_name, verify=True)
    except ssl.SSLCertVerificationError as exc:
        verified, verify_error = False, exc.verify_message or str(exc)
        info = None
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        raise ToolError(f"TLS connection to {host}:{args.port} failed: {exc}") from None
    if info is None:
        try:
            info = await _tls_connect(ip, args.port, server_name, verify=False)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ToolError(f"TLS connection to {host}:{args.port} failed: {exc}") from None
    if not info["leaf"]:
        raise ToolError("the server sent no certificate")
    leaf = _cert_info(info["leaf"])
    chain = [_cert_info(der) for der in info["chain"][1:]] if len(info["chain"]) > 1 else []
    return {
        "host": host,
        "port": args.port,
        "address": ip,
        "verified": verified,
        "verify_error": verify_error,
        "protocol": info["protocol"],
        "cipher": info["cipher"],
        "certificate": leaf,
        "chain": chain,
        "expired": leaf["days_left"] < 0,
    }


# ---------------------------------------------------------------- HTTP and TCP


class HttpArgs(Args):
    url: str = Field(description="http(s) URL to check", max_length=4096)
    method: Literal["GET", "HEAD"] = "GET"
    follow_redirects: bool = True


async def http_check(args: HttpArgs, ctx: ToolContext) -> dict[str, Any]:
    try:
        await check_url(args.url, ctx.services.policy)  # a refused URL costs no probe
    except SSRFBlocked as exc:
        raise ToolError(f"URL refused: {exc}") from None
    await ctx.services.quotas.take("probes", ctx.identity.user_id)
    try:
        res = await ctx.services.http.request(
            args.method, args.url, timeout_s=15, max_bytes=65536, follow_redirects=args.follow_redirects
        )
    except SSRFBlocked as exc:
        raise ToolError(f"URL refused: {exc}") from None
    except FetchError as exc:
        raise ToolError(str(exc)) from None
    headers = dict(list(res.headers.items())[:60])
    return {
        "url": args.url,
        "final_url": res.url,
        "status": res.status,
        "ok": 200 <= res.status < 400,
        "latency_ms": res.elapsed_ms,
        "redirects": res.redirects,
        "headers": headers,
        "body_bytes_read": len(res.body),
    }


class TcpArgs(Args):
    host: str = Field(description="Host name or IP address", max_length=255)
    ports: list[int] = Field(description="TCP ports to try (up to 20)", min_length=1, max_length=20)
    timeout_s: float = Field(default=3.0, gt=0, le=10)


async def tcp_port_check(args: TcpArgs, ctx: ToolContext) -> dict[str, Any]:
    host = hostname(args.host)
    for port in args.ports:
        if not 1 <= port <= 65535:
            raise ToolError(f"port {port} is out of range")
    addresses = await vetted_addresses(host, ctx.services.policy)
    ports = list(dict.fromkeys(args.ports))
    # One probe per port: scanning is what this quota is for. All or nothing, no partial scan.
    await ctx.services.quotas.take("probes", ctx.identity.user_id, cost=len(ports))
    ip = addresses[0]

    async def one(port: int) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout=args.timeout_s)
            writer.close()
            state = "open"
        except TimeoutError:
            state = "filtered"
        except ConnectionRefusedError:
            state = "closed"
        except OSError as exc:
            state = f"error: {exc.strerror or exc}"
        return {"port": port, "state": state, "latency_ms": round((time.perf_counter() - start) * 1000, 2)}

    results = await asyncio.gather(*(one(p) for p in ports))
    return {"host": host, "address": ip, "ports": list(results)}


# Per-tool time limits (seconds), within MCP_TOOL_TIMEOUT_S.
TIMEOUTS = {
    "dns_lookup": 10,
    "reverse_dns": 10,
    "ping": 20,
    "whois": 25,
    "ssl_check": 20,
    "http_check": 20,
    "tcp_port_check": 15,
}


def register(registry: Registry) -> None:
    for tool in (
        Tool("dns_lookup", "Look up DNS records (A, AAAA, MX, TXT, ...) of a domain.", "network", DnsArgs, dns_lookup),
        Tool(
            "reverse_dns", "Find the host names of an IP address (PTR records).", "network", ReverseDnsArgs, reverse_dns
        ),
        Tool(
            "ping", "Send ICMP echo requests to a host; reports loss and round-trip times.", "network", PingArgs, ping
        ),
        Tool("whois", "Registration data of a domain or IP address (WHOIS).", "network", WhoisArgs, whois),
        Tool(
            "ssl_check",
            "Inspect a server's TLS certificate: validity, chain, expiry, SANs, protocol.",
            "network",
            SslArgs,
            ssl_check,
        ),
        Tool(
            "http_check",
            "Fetch a URL and report status, latency, headers and redirects.",
            "network",
            HttpArgs,
            http_check,
        ),
        Tool(
            "tcp_port_check",
            "Check whether TCP ports on a host accept connections.",
            "network",
            TcpArgs,
            tcp_port_check,
        ),
    ):
        registry.add(dataclasses.replace(tool, timeout_s=TIMEOUTS[tool.name]))
