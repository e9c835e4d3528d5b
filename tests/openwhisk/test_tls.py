"""TLS: an HTTPS emulator with a self-signed certificate is refused unless the client trusts
its CA bundle or is told to skip verification."""

from __future__ import annotations

import logging
import shutil
import subprocess

import pytest

from owaction.openwhisk import ConnectFailed
from tests.procs import PYTHON, ROOT, Proc, free_port, wait_for_port


@pytest.fixture
def https_emulator(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    port = free_port()
    proc = Proc(
        [PYTHON, "-m", "openwhisk_emulator", "--port", str(port), "--certfile", str(cert),
         "--keyfile", str(key), "--seed", str(ROOT / "openwhisk_emulator" / "examples")],
        log_path=tmp_path / "emulator-tls.log",
    )
    try:
        wait_for_port(port, proc.popen)
        yield f"https://127.0.0.1:{port}", str(cert)
    finally:
        proc.stop()


def test_self_signed_certificate_is_refused_by_default(make_client, https_emulator):
    url, _ = https_emulator
    client = make_client(api_host=url, get_retries=0)
    with pytest.raises(ConnectFailed) as info:
        client.invoke_action("hello", result=True)
    assert "TLS" in str(info.value)
    assert info.value.request_sent is False


def test_a_ca_bundle_makes_the_certificate_trusted(make_client, https_emulator):
    url, cert = https_emulator
    client = make_client(api_host=url, verify=cert)
    assert client.invoke_action("hello", result=True).result == {"message": "Hello World"}


def test_insecure_mode_works_and_warns_once_in_the_log_not_per_request(
        make_client, https_emulator, caplog):
    url, _ = https_emulator
    with caplog.at_level(logging.WARNING, logger="owaction.openwhisk"):
        client = make_client(api_host=url, verify=False)
        # pytest turns warnings into errors, so urllib3's per-request warning would fail this.
        for _ in range(3):
            assert client.invoke_action("hello", result=True).success
    assert len([r for r in caplog.records if "verification is OFF" in r.message]) == 1
