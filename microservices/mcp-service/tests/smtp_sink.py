"""A real SMTP server (the RFC 5321 subset smtplib uses without TLS or login) on
127.0.0.1 that keeps every accepted message: what the email tool's unit tests
count deliveries at. The e2e suite uses aiosmtpd; the service's venv has only
its own requirements, and this is small enough to keep here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Envelope:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class SmtpSink:
    messages: list[Envelope] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        reply("220 sink.test ESMTP ready")
        mail_from, rcpts = "", []
        try:
            while line := await reader.readline():
                verb, _, arg = line.decode(errors="replace").strip().partition(" ")
                verb = verb.upper()
                if verb in ("EHLO", "HELO"):
                    reply("250-sink.test" if verb == "EHLO" else "250 sink.test")
                    if verb == "EHLO":
                        reply("250 8BITMIME")
                elif verb == "MAIL":
                    mail_from, rcpts = arg.partition(":")[2].strip().strip("<>"), []
                    reply("250 OK")
                elif verb == "RCPT":
                    rcpts.append(arg.partition(":")[2].strip().strip("<>"))
                    reply("250 OK")
                elif verb == "DATA":
                    reply("354 End data with <CR><LF>.<CR><LF>")
                    await writer.drain()
                    lines = []
                    while (data := await reader.readline()) not in (b".\r\n", b".\n", b""):
                        lines.append(data[1:] if data.startswith(b"..") else data)  # dot-unstuffing
                    self.messages.append(Envelope(mail_from, rcpts, b"".join(lines)))
                    reply("250 OK: queued")
                elif verb == "QUIT":
                    reply("221 Bye")
                    await writer.drain()
                    break
                elif verb in ("RSET", "NOOP"):
                    reply("250 OK")
                else:
                    reply("502 Command not implemented")
                await writer.drain()
        finally:
            writer.close()

    async def start(self) -> SmtpSink:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
