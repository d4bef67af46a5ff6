"""TLS on the clinic network: the clinic's own certificate, HTTPS with HSTS, and no plain HTTP on
the LAN unless a setting says so."""

from __future__ import annotations

import os
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devicectl.core.config import ConfigError, load_settings
from devicectl.web.tls import make_self_signed
from tests.service_harness import free_port


def test_a_non_loopback_address_without_tls_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="http_host: 0.0.0.0 .*tls_cert and tls_key.*allow_plain_http_on_lan"):
        load_settings(None, http_host="0.0.0.0", data_dir=tmp_path)
    assert load_settings(None, http_host="0.0.0.0", allow_plain_http_on_lan=True, data_dir=tmp_path).http_host == "0.0.0.0"
    assert load_settings(None, http_host="127.0.0.1", data_dir=tmp_path).tls_cert is None
    assert load_settings(None, http_host="localhost", data_dir=tmp_path).tls_cert is None


def test_certificate_and_key_go_together_and_must_exist(tmp_path: Path) -> None:
    make_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem", ["clinic.local", "127.0.0.1"])
    assert stat.S_IMODE(os.stat(tmp_path / "key.pem").st_mode) == 0o600
    with pytest.raises(ConfigError, match="give both"):
        load_settings(None, tls_cert=tmp_path / "cert.pem", data_dir=tmp_path)
    with pytest.raises(ConfigError, match="tls_key: .* is not a file"):
        load_settings(None, tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "missing.pem", data_dir=tmp_path)
    settings = load_settings(None, http_host="0.0.0.0", tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "key.pem",
                             data_dir=tmp_path)
    assert settings.tls_cert == tmp_path / "cert.pem"


def test_serve_speaks_https_with_hsts_and_the_cli_makes_the_certificate(tmp_path: Path) -> None:
    made = subprocess.run([sys.executable, "-m", "devicectl.cli", "tls-selfsigned", "--name", "127.0.0.1",
                           "--cert", str(tmp_path / "cert.pem"), "--key", str(tmp_path / "key.pem")],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert "tls_cert" in made.stdout
    port = free_port()
    config = tmp_path / "devicectl.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nhttp_port = {port}\n'
                      f'tls_cert = "{tmp_path / "cert.pem"}"\ntls_key = "{tmp_path / "key.pem"}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "devicectl.cli", "serve", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        banner = ""
        deadline = time.monotonic() + 30
        while "https://" not in banner and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            banner += line
        assert f"https://127.0.0.1:{port}" in banner, banner
        trusted = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        reply = httpx.get(f"https://127.0.0.1:{port}/api/health", verify=trusted, timeout=10)
        assert reply.status_code == 200
        assert reply.headers["strict-transport-security"].startswith("max-age=")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)  # no plain HTTP on the TLS port
    finally:
        proc.terminate()
        proc.wait(timeout=20)
