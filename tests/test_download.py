"""The CAMELS downloader against a local HTTP server on loopback: resume with a Range
request, size and SHA-256 checks, and a clear error when the server cannot be reached."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import pytest

from lodi_core.data.camels import download
from lodi_core.io import InputError

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD, honouring 'Range: bytes=N-' as a file server does."""

    requests: list = []

    def do_GET(self):  # noqa: N802 - http.server API
        RangeHandler.requests.append(self.headers.get("Range"))
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    RangeHandler.requests = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_resumes_a_partial_file_and_checks_the_checksum(server, tmp_path):
    dest = tmp_path / "Sims/snapshot_090.hdf5"
    dest.parent.mkdir(parents=True)
    (tmp_path / "Sims/snapshot_090.hdf5.part").write_bytes(PAYLOAD[:300_000])  # an interrupted download
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    download(f"{server}/Sims/snapshot_090.hdf5", dest, sha256=sha)
    assert dest.read_bytes() == PAYLOAD and not dest.with_name(dest.name + ".part").exists()
    assert RangeHandler.requests == ["bytes=300000-"]


def test_a_wrong_checksum_is_refused_and_nothing_is_kept(server, tmp_path):
    dest = tmp_path / "groups_090.hdf5"
    with pytest.raises(InputError, match="SHA-256 mismatch"):
        download(f"{server}/groups_090.hdf5", dest, sha256="0" * 64)
    assert not dest.exists() and not list(tmp_path.iterdir())


def test_an_unreachable_server_gives_a_clear_error(tmp_path):
    with socket.socket() as s:  # a port on loopback with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(InputError, match="cannot reach the CAMELS file server.*offline"):
        download(f"http://127.0.0.1:{port}/x.hdf5", tmp_path / "x.hdf5", retries=1, timeout=2)
    assert not (tmp_path / "x.hdf5").exists()
