"""A real (small) authoritative DNS server for the DNS tools' tests: UDP on 127.0.0.1,
answers built with dnspython from a zone given as text, every question recorded.

It plays what an internal resolver would answer (container names, split-horizon
zones, localhost, metadata addresses), so the tests can prove what the tools
keep to themselves and which questions never leave the service.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


@dataclass
class DnsServer:
    zone: dict[tuple[str, str], list[str]]  # (absolute name, type) -> rdata texts
    questions: list[tuple[str, str]] = field(default_factory=list)  # (name, type) as asked
    port: int = 0
    _transport: asyncio.DatagramTransport | None = None

    @classmethod
    def from_text(cls, text: str) -> DnsServer:
        """Lines of `name TYPE rdata...` (TTL and class left out)."""
        zone: dict[tuple[str, str], list[str]] = {}
        for line in text.strip().splitlines():
            name, rtype, rdata = line.split(None, 2)
            zone.setdefault((dns.name.from_text(name).to_text().lower(), rtype.upper()), []).append(rdata)
        return cls(zone)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().lower()
        rtype = dns.rdatatype.to_text(question.rdtype)
        self.questions.append((name.rstrip("."), rtype))
        records = self.zone.get((name, rtype))
        if records:
            response.answer.append(dns.rrset.from_text_list(question.name, 60, dns.rdataclass.IN, rtype, records))
        elif not any(n == name for n, _ in self.zone):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()

    async def start(self) -> DnsServer:
        server = self

        class Protocol(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                self.transport.sendto(server.answer(data), addr)  # type: ignore[attr-defined]

        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Protocol, local_addr=("127.0.0.1", 0))
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
