"""MQTT over TLS with a CA and certificates generated in the test: the agent verifies the
broker's certificate by default, authenticates with a client certificate, and a broker
certificate that does not verify is a clear message, not a traceback, while readings wait
in the spool."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers import wait_until
from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.brokers import MosquittoProcess
from vatio.simulators.configs import loopback_config
from vatio.simulators.modbus_server import ModbusTcpSimulator, SimulatedMeter

pytestmark = pytest.mark.integration


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path, name: str) -> None:
    """A CA ``name``-ca, a server certificate for 127.0.0.1 and a client certificate."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            f"/CN={name}-ca", "-keyout", f"{name}-ca.key", "-out", f"{name}-ca.pem",
            cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for who, ext in (("server", ["-extfile", "san.ext"]), ("client", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}",
                "-keyout", f"{name}-{who}.key", "-out", f"{who}.csr", cwd=d)  # fmt: skip
        openssl("x509", "-req", "-in", f"{who}.csr", "-CA", f"{name}-ca.pem", "-CAkey",
                f"{name}-ca.key", "-CAcreateserial", "-days", "2",
                "-out", f"{name}-{who}.pem", *ext, cwd=d)  # fmt: skip
    for f in d.iterdir():
        f.chmod(0o644)  # mosquitto drops to its own user


async def test_tls_with_verification_and_a_client_certificate(
    tmp_path, capture_factory, agent_factory
):
    # not under tmp_path: mosquitto, started as root, reads them as its own user
    holder = tempfile.TemporaryDirectory(prefix="vatio-pki-")
    pki = Path(holder.name)
    pki.chmod(0o755)
    make_pki(pki, "good")
    make_pki(pki, "other")
    sim = ModbusTcpSimulator([SimulatedMeter(1, load_profile("eastron_sdm120"))])
    port = await sim.start()
    with MosquittoProcess() as plain:  # the test's own subscriber listens in plain text
        tls_port = plain.port + 1 if plain.port < 65000 else plain.port - 1
        plain.extra_config = (
            f"listener {tls_port} 127.0.0.1\n"
            f"cafile {pki}/good-ca.pem\ncertfile {pki}/good-server.pem\n"
            f"keyfile {pki}/good-server.key\nrequire_certificate true\n"
        )
        plain.restart()
        try:
            cap = capture_factory(plain.port)
            devices = [("m", "b", 1, "eastron_sdm120", "500ms")]
            url = f"mqtts://127.0.0.1:{tls_port}"

            def config(ca: str, name: str) -> Path:
                tls = (
                    f"tls: {{ca_file: '{pki}/{ca}-ca.pem', cert_file: '{pki}/good-client.pem',"
                    f" key_file: '{pki}/good-client.key'}}"
                )
                cfg = tmp_path / f"{name}.yaml"
                state = tmp_path / f"state-{name}"
                cfg.write_text(loopback_config("s", name, state, {"b": port}, devices, url, tls))
                return cfg

            # the wrong CA: the broker's certificate does not verify
            bad = agent_factory(config("other", "gw-bad"))
            await wait_until(lambda: "does not verify" in bad.output(), 20, "a TLS error")
            assert "tls.ca_file" in bad.output() and "Traceback" not in bad.output()
            assert bad.proc.poll() is None  # it keeps polling into the spool
            assert bad.stop() == 0

            good = agent_factory(config("good", "gw-good"))
            await wait_until(lambda: len(cap.on("/m/telemetry")) >= 3, 20, "telemetry over TLS")
            assert good.stop() == 0
        finally:
            await sim.stop()
            holder.cleanup()
