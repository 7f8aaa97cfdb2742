"""A FAKE Twilio REST API for tests: Twilio's real wire format for sending SMS.

Speaks `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP Basic
auth (AccountSid:AuthToken) and a form body (`To`, `From`, `Body`), answering
201 with a Message resource, 401 (code 20003) for bad credentials and 400
(code 21211 / 21602) for a bad number or an empty body, as Twilio does. It
sends nothing anywhere: accepted messages are kept in memory and listed by
`GET /_fake/messages` (the fake's own test hook, not Twilio's).

    python tests/fakes/fake_twilio.py --port 18090 --sid AC... --token secret
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

_PATH = re.compile(r"^/2010-04-01/Accounts/([A-Za-z0-9]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class FakeTwilio:
    def __init__(self, account_sid: str, auth_token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.messages: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def _json(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, code: int, message: str) -> None:
                self._json(status, {"code": code, "message": message, "more_info": "", "status": status})

            def do_GET(self) -> None:
                if self.path == "/_fake/messages":
                    self._json(200, fake.messages)
                else:
                    self._error(404, 20404, "The requested resource was not found")

            def do_POST(self) -> None:
                m = _PATH.match(self.path)
                if not m:
                    self._error(404, 20404, "The requested resource was not found")
                    return
                expected = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}" or m.group(1) != fake.account_sid:
                    self._error(401, 20003, "Authenticate")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
                if not _E164.fullmatch(to):
                    self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
                    return
                if not body:
                    self._error(400, 21602, "Message body is required.")
                    return
                now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
                message = {
                    "sid": "SM" + uuid.uuid4().hex,
                    "account_sid": fake.account_sid,
                    "to": to,
                    "from": sender,
                    "body": body,
                    "status": "queued",
                    "num_segments": str(max(1, -(-len(body) // 160))),
                    "direction": "outbound-api",
                    "date_created": now,
                    "date_updated": now,
                    "api_version": "2010-04-01",
                    "uri": f"/2010-04-01/Accounts/{fake.account_sid}/Messages/SM.json",
                }
                fake.messages.append(message)
                self._json(201, message)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeTwilio:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--sid", default="AC" + "0" * 32)
    parser.add_argument("--token", default="fake-token")
    args = parser.parse_args()
    fake = FakeTwilio(args.sid, args.token, port=args.port)
    print(f"fake Twilio on {fake.url}", flush=True)
    fake.server.serve_forever()
