"""A local stand-in for Google's OAuth token endpoint, and service-account files that point at it.

Why: the Vertex AI path with application default credentials exchanges a service-account JWT for an
access token over HTTPS to Google. Tests (client and real kernels) point the key file's ``token_uri``
at this server on 127.0.0.1, so the real google-auth code path runs offline.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ACCESS_TOKEN = "fake-access-token-user-path-0123456789"  # not the shape of a real token
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class TokenEndpoint:
    """A stand-in for Google's OAuth token endpoint: answers the service-account JWT-bearer exchange.

    Runs ``http.server`` on 127.0.0.1 in a thread (google-auth refreshes with blocking ``requests``).
    ``assertions`` keeps the claims of every JWT it was sent.
    """

    def __init__(self) -> None:
        self.assertions: list[dict[str, Any]] = []
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                if form.get("grant_type") != [JWT_BEARER]:
                    self.send_error(400, "unsupported grant_type")
                    return
                claims = form["assertion"][0].split(".")[1]
                endpoint.assertions.append(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4))))
                body = json.dumps({"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None  # quiet test output

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def service_account_file(path: Path, token_uri: str) -> Path:
    """Write a service-account key file with a fresh RSA key, whose token exchange goes to ``token_uri``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "sa-project", "private_key_id": "test-key-1",
        "private_key": pem, "client_email": "live-nb-test@sa-project.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": token_uri,
    }))
    return path
