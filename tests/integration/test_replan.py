"""A meter that refuses reads across the gaps between its documented registers (issue 12,
item 10), played by a real Modbus/TCP server: pymodbus with only the profile's registers
defined answers exception 2 to any request that touches a hole.

Counted, not sampled: each test says how many values it received and how many were lost.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from tests.conftest import AgentProcess
from tests.helpers import expected_on_wire, wait_until
from tests.integration.test_commissioning import vatio
from vatio.common.links import SerialLine
from vatio.drivers.modbus.device import ModbusDevice
from vatio.drivers.modbus.planner import plan_reads
from vatio.drivers.modbus.profile import load_profile
from vatio.drivers.modbus.register_codec import encode
from vatio.drivers.modbus.transport import ModbusTransport
from vatio.simulators.brokers import free_port
from vatio.simulators.configs import loopback_config
from vatio.simulators.modbus_server import ModbusSerialSimulator, ModbusTcpSimulator, SimulatedMeter
from vatio.simulators.serial_pair import SerialPair

pytestmark = pytest.mark.integration

FROZEN_T = 1_795_000_000.0


def strict_meters() -> list[SimulatedMeter]:
    clock = lambda: FROZEN_T  # noqa: E731
    return [
        SimulatedMeter(1, load_profile("eastron_sdm630"), seed=1, clock=clock, strict=True),
        SimulatedMeter(2, load_profile("eastron_sdm120"), seed=2, clock=clock, strict=True),
        # a meter that truly lacks one value of its profile (an older firmware)
        SimulatedMeter(
            3, load_profile("eastron_sdm630"), seed=3, clock=clock, strict=True,
            lacks=("current_n_a",),
        ),
    ]  # fmt: skip


async def test_the_strict_server_refuses_a_request_across_a_hole():
    meters = strict_meters()
    sim = ModbusTcpSimulator(meters)
    port = await sim.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    try:
        await client.connect()
        profile = meters[0].profile
        answers = []
        for req in plan_reads(profile.points, profile.limits):
            rr = await client.read_input_registers(req.start, count=req.count, device_id=1)
            answers.append(getattr(rr, "exception_code", 0) if rr.isError() else 0)
        hole = await client.read_input_registers(42, count=2, device_id=1)  # 42..43: unmapped
        mapped = await client.read_input_registers(0, count=42, device_id=1)
    finally:
        client.close()
        await sim.stop()
    # the profile's plan (0..41, 52..87, 200..225, 342..345): the two with holes are refused
    assert answers == [0, 2, 2, 0]
    assert hole.isError() and hole.exception_code == 2 and not mapped.isError()
    assert meters[0].exception_replies == 3


def config(tmp_path: Path, port: int, mqtt_port: int, http_port: int) -> Path:
    path = tmp_path / "vatio.yaml"
    path.write_text(
        loopback_config(
            "s", "gw", tmp_path / "state", {"gw": port},
            [
                ("sdm630", "gw", 1, "eastron_sdm630", "500ms"),
                ("sdm120", "gw", 2, "eastron_sdm120", "500ms"),
                ("old630", "gw", 3, "eastron_sdm630", "500ms"),
            ],
            f"mqtt://127.0.0.1:{mqtt_port}", "keepalive: 5",
        )
        + f"http: {{listen: 127.0.0.1:{http_port}}}\n"
    )  # fmt: skip
    return path


def get_json(port: int, path: str) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:  # /healthz answers 503 with the same body
        return json.loads(exc.read())


@pytest.mark.serial  # "lost == 0 from the first poll on": a loaded machine times a read out
async def test_the_agent_learns_what_a_strict_meter_refuses_and_keeps_it(
    tmp_path, mosquitto, capture_factory
):
    meters = strict_meters()
    sim = ModbusTcpSimulator(meters)
    port = await sim.start()
    http_port = free_port()
    cfg = config(tmp_path, port, mosquitto.port, http_port)
    cap = capture_factory(mosquitto.port)
    names = {"sdm630": meters[0], "sdm120": meters[1], "old630": meters[2]}
    agents: list[AgentProcess] = []
    try:
        agents.append(AgentProcess(cfg, log=tmp_path / "first.log"))
        await wait_until(
            lambda: all(len(cap.on(f"/{n}/telemetry")) >= 3 for n in names), 20, "3 polls each"
        )
        tried = lost = 0
        wrong = []
        for name, meter in names.items():
            expected = expected_on_wire(meter.profile, meter.served)
            for body in cap.on(f"/{name}/telemetry"):  # from the very first poll on
                for q, v in body["values"].items():
                    tried += 1
                    if name == "old630" and q == "current_n_a":
                        assert v is None and body["quality"][q] == "exception 2"
                        continue
                    lost += v is None
                    if v != pytest.approx(expected[q], rel=1e-9, abs=1e-9):
                        wrong.append((name, q, v))
        # 92 values per round, 91 of them readable (main: 43 lost per round, 29 of them of
        # the sdm630 + sdm120 pair)
        print(f"first run: {tried} values received, {lost} lost")
        assert lost == 0 and not wrong, wrong[:5]
        statuses = {n: cap.on(f"/{n}/status")[-1] for n in names}
        assert statuses["sdm630"]["state"] == "online" and statuses["sdm120"]["state"] == "online"
        assert statuses["old630"]["state"] == "degraded"
        assert statuses["old630"]["reason"] == (
            "1 of 38 values refused by the device (exception 2 (illegal data address)): current_n_a"
        )
        health = get_json(http_port, "/healthz")
        assert health["devices"] == {"sdm630": "online", "sdm120": "online", "old630": "degraded"}
        page = {d["name"]: d for d in get_json(http_port, "/api/status")["devices"]}
        assert "current_n_a" in page["old630"]["reason"] and page["sdm630"]["reason"] == ""
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert 'vatio_values_refused{device="old630"} 1\n' in metrics
        assert 'vatio_values_refused{device="sdm630"} 0\n' in metrics
        assert 'vatio_read_plan_splits_total{device="sdm630"} 5\n' in metrics
        assert 'vatio_read_plan_splits_total{device="sdm120"} 7\n' in metrics
        assert 'vatio_device_up{device="old630"} 0\n' in metrics
        events = cap.on("/old630/events")
        assert [e["event"] for e in events] == ["device_degraded"]
        log = agents[0].output()
        for name, unit in (("sdm630", 1), ("sdm120", 2), ("old630", 3)):
            assert log.count(f"device '{name}' unit {unit}: input registers") == 1, log
        assert "→ 9 request(s) per poll; all 38 values read" in log
        assert "3 → 10 request(s) per poll; all 16 values read" in log
        assert "still refused: 1 of 38 values refused by the device" in log
        assert agents[0].stop() == 0
        stored = json.loads((tmp_path / "state" / "drivers" / "sdm120.json").read_text())
        assert len(stored["plan"]) == 10

        # restart: the learned plan is used from the first poll, nothing is refused again
        before = [m.exception_replies for m in meters]
        requests_before = meters[2].requests
        seen = {n: len(cap.on(f"/{n}/telemetry")) for n in names}
        agents.append(AgentProcess(cfg, log=tmp_path / "second.log"))
        await wait_until(
            lambda: all(len(cap.on(f"/{n}/telemetry")) >= seen[n] + 3 for n in names),
            20, "3 more polls each",
        )  # fmt: skip
        assert agents[1].stop() == 0
        after = [m.exception_replies for m in meters]
        assert after[0] == before[0] and after[1] == before[1]
        # the value it lacks: one refused request per poll (the 8th of its 9), no more; a
        # poll cut short by the stop may have sent 8 of the 9
        polls3 = (meters[2].requests - requests_before + 1) // 9
        assert after[2] - before[2] == polls3 >= 3
        tried = lost = 0
        for name in names:
            for body in cap.on(f"/{name}/telemetry")[seen[name] :]:
                tried += len(body["values"])
                lost += sum(v is None for q, v in body["values"].items() if q != "current_n_a")
        print(f"after the restart: {tried} values received, {lost} lost")
        assert lost == 0
        log2 = agents[1].output()
        assert "refused with" not in log2
        assert log2.count("using the read plan learned before") == 3
    finally:
        for a in agents:
            a.stop()
        await sim.stop()


async def test_scan_read_and_check_on_a_strict_gateway(tmp_path):
    meters = strict_meters()
    sim = ModbusTcpSimulator(meters)
    port = await sim.start()
    cfg = config(tmp_path, port, free_port(), free_port())
    try:
        scan = await vatio("scan", f"127.0.0.1:{port}", "--units", "1-3", "-q", "--timeout", "0.2")
        before = await vatio("check", "-c", str(cfg))
        read = await vatio("read", "-c", str(cfg), "--json")
        table = await vatio("read", "-c", str(cfg), "old630")
    finally:
        await sim.stop()
    assert scan.returncode == 0, scan.stderr
    row = {int(x.split()[0]): x for x in scan.stdout.splitlines() if x[:4].strip().isdigit()}
    assert "eastron_sdm630" in row[1] and "eastron_sdm120" in row[2], scan.stdout
    assert "eastron_sdm630" in row[3]  # the value it lacks is not in the signature
    assert "4 request(s) per poll\n" in before.stdout and "adjusted" not in before.stdout

    assert read.returncode == 0, read.stderr
    body = json.loads(read.stdout)
    nulls = {n: [q for q, v in d["values"].items() if v is None] for n, d in body.items()}
    assert nulls == {"sdm630": [], "sdm120": [], "old630": ["current_n_a"]}
    assert body["old630"]["degraded"].startswith("1 of 38 values refused")
    plan = body["sdm120"]["plan"]
    assert plan[0].startswith("read plan adjusted to the device") and "3)" in plan[0]
    assert any("input 0..37 split into 0..1, 6..7" in x for x in plan)
    assert "DEGRADED 1 of 38 values refused" in table.stdout
    assert "224..225 refused with exception 2 (illegal data address): current_n_a" in table.stdout
    # `vatio read` never writes the agent's state
    assert not (tmp_path / "state" / "drivers").exists()

    # `vatio check` shows the plan the agent learned (here: written by a first agent run)
    sim = ModbusTcpSimulator(strict_meters())
    port2 = await sim.start()
    try:
        cfg2 = config(tmp_path, port2, free_port(), free_port())
        agent = AgentProcess(cfg2, log=tmp_path / "agent.log")
        await wait_until(
            lambda: len(list((tmp_path / "state" / "drivers").glob("*.json"))) == 3
            if (tmp_path / "state" / "drivers").exists() else False,
            20, "the learned plans on disk",
        )  # fmt: skip
        await asyncio.sleep(0.2)
        agent.stop()
    finally:
        await sim.stop()
    after = await vatio("check", "-c", str(cfg2))
    assert after.returncode == 0, after.stderr
    out = after.stdout
    assert "sdm630: every 0.5 s, Eastron SDM630 unit 1 on 'gw': 38 values in 9 request(s)" in out
    assert "input 52..87 split into 52..53, 56..57, 60..63, 70..79, 84..87" in out
    assert "sdm120: every 0.5 s, Eastron SDM120 unit 2 on 'gw': 16 values in 10 request(s)" in out
    assert "input 224..225 refused with exception 2 (illegal data address): current_n_a" in out


# ---- the issue's reproduction: a libmodbus (C) server, not pymodbus ------------------------

LIBMODBUS_SERVER = Path(__file__).parent.parent / "fixtures" / "libmodbus_strict_server.c"


@pytest.fixture(scope="module")
def libmodbus_server(tmp_path_factory) -> Path:
    """tests/fixtures/libmodbus_strict_server.c, compiled against Debian's libmodbus."""
    cc = shutil.which("cc")
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "libmodbus"], capture_output=True, text=True
    )
    if cc is None or flags.returncode != 0:
        pytest.fail(
            "a C compiler and libmodbus are needed: run ./scripts/test as root, or "
            "apt-get install gcc libmodbus-dev"
        )
    binary = tmp_path_factory.mktemp("libmodbus") / "strict_server"
    subprocess.run(
        [cc, "-O1", "-Wall", "-Werror", "-o", str(binary), str(LIBMODBUS_SERVER),
         *flags.stdout.split()],
        check=True,
    )  # fmt: skip
    return binary


def register_image(unit: int, meter: SimulatedMeter) -> tuple[list[str], dict[str, float]]:
    """Lines for the C server's stdin and the values they hold (floats packed here, big-endian
    ABCD, as Eastron sends them)."""
    lines, expected = [], {}
    for p, v in zip(meter.profile.points, meter.values_at(FROZEN_T).values(), strict=True):
        assert p.data_type.value == "f32" and p.word_order == p.byte_order == "big"
        hi, lo = struct.unpack(">HH", struct.pack(">f", v))
        fc = 4 if p.register_type.value == "input" else 3
        lines += [f"{unit} {fc} {p.address} {hi}", f"{unit} {fc} {p.address + 1} {lo}"]
        expected[p.quantity] = struct.unpack(">f", struct.pack(">f", v))[0]
    # what the meter holds beside its measurements: its model code (an SDM120's 0x0020 at
    # holding 0xFC02), which `vatio scan` reads to tell it from an SDM220/SDM230
    code = {q: lo for q, lo, _ in meter.profile.signature}
    for p in meter.profile.identify:
        fc = 4 if p.register_type.value == "input" else 3
        words = encode(code[p.quantity], p.data_type, p.word_order, p.byte_order)
        lines += [f"{unit} {fc} {p.address + i} {w}" for i, w in enumerate(words)]
    return lines, expected


async def test_the_issue_reproduction_on_a_libmodbus_server(
    tmp_path, libmodbus_server, mosquitto, capture_factory
):
    meters = strict_meters()[:2]  # an SDM630 (unit 1) and an SDM120 (unit 2): 54 values
    image, expected = [], {}
    for name, meter in zip(("sdm630", "sdm120"), meters, strict=True):
        lines, expected[name] = register_image(meter.unit, meter)
        image += lines
    port = free_port()
    served = tmp_path / "server.log"
    with served.open("w") as out:
        server = subprocess.Popen([str(libmodbus_server), str(port)], stdin=subprocess.PIPE,
                                  stdout=out, text=True)  # fmt: skip
    assert server.stdin is not None
    server.stdin.write("\n".join(image) + "\n")
    server.stdin.close()
    agents: list[AgentProcess] = []
    try:
        await wait_until(lambda: "listening" in served.read_text(), 10, "the libmodbus server")

        def refused(unit: int) -> int:
            return sum(
                1 for line in served.read_text().splitlines()
                if line.startswith(f"{unit} ") and "exception 2" in line
            )  # fmt: skip

        scan = await vatio("scan", f"127.0.0.1:{port}", "--units", "1-3", "-q", "--timeout", "0.2")
        assert scan.returncode == 0, scan.stderr
        rows = {int(x.split()[0]): x for x in scan.stdout.splitlines() if x[:4].strip().isdigit()}
        assert set(rows) == {1, 2}, scan.stdout  # unit 3: "gateway target did not answer"
        assert "eastron_sdm630" in rows[1] and "eastron_sdm120" in rows[2], scan.stdout
        scan_refusals = refused(1) + refused(2)

        cfg = tmp_path / "vatio.yaml"
        cfg.write_text(
            loopback_config(
                "s", "gw", tmp_path / "state", {"gw": port},
                [("sdm630", "gw", 1, "eastron_sdm630", "500ms"),
                 ("sdm120", "gw", 2, "eastron_sdm120", "500ms")],
                f"mqtt://127.0.0.1:{mosquitto.port}", "keepalive: 5",
            )
        )  # fmt: skip
        cap = capture_factory(mosquitto.port)
        tried = lost = 0
        for run in (1, 2):
            seen = {n: len(cap.on(f"/{n}/telemetry")) for n in expected}
            before = refused(1) + refused(2)
            agents.append(AgentProcess(cfg, log=tmp_path / f"run{run}.log"))
            await wait_until(
                lambda: all(len(cap.on(f"/{n}/telemetry")) >= seen[n] + 3 for n in expected),  # noqa: B023
                20, "3 polls of each meter",
            )  # fmt: skip
            assert agents[-1].stop() == 0
            for name, values in expected.items():
                for body in cap.on(f"/{name}/telemetry")[seen[name] :]:
                    for q, v in body["values"].items():
                        tried += 1
                        lost += v is None
                        assert v is None or v == pytest.approx(values[q], rel=1e-9), (name, q)
            log = agents[-1].output()
            if run == 1:  # learned in the first poll, said once per meter
                # 2 + 2 requests of the profiles' plans refused, then the bisection's
                # pieces with holes: 5 refusals for the SDM630, 7 for the SDM120
                assert refused(1) + refused(2) - before == 12
                assert log.count("device 'sdm630' unit 1: input registers 52..87 refused") == 1
                assert log.count("device 'sdm120' unit 2: input registers 0..37 refused") == 1
            else:  # the learned plan from the first poll on: nothing refused again
                assert refused(1) + refused(2) == before, served.read_text()[-500:]
                assert "refused with" not in log
        print(f"libmodbus: {tried} values received, {lost} lost; scan refused {scan_refusals}")
        assert lost == 0

        check = await vatio("check", "-c", str(cfg))
        assert "38 values in 9 request(s) per poll" in check.stdout
        assert "16 values in 10 request(s) per poll" in check.stdout
        assert "input 0..37 split into 0..1, 6..7, 12..13" in check.stdout
    finally:
        for a in agents:
            a.stop()
        server.kill()
        server.wait(10)


async def test_on_a_9600_baud_line_learning_is_spread_over_polls_that_keep_their_time(
    tmp_path, caplog
):
    """RS-485 time is scarce: pieces are tried in a poll only for a timeout's worth of bus
    time, the rest from the next poll, so no poll outgrows its interval while learning."""
    if not SerialPair.available():
        pytest.fail("socat is not installed: run ./scripts/test as root (apt-get install socat)")
    meter = SimulatedMeter(1, load_profile("eastron_sdm120"), seed=2, strict=True,
                           clock=lambda: FROZEN_T)  # fmt: skip
    with SerialPair(tmp_path) as pair:
        sim = ModbusSerialSimulator([meter], pair.a, baudrate=9600, baud_faithful=True)
        await sim.start()
        bus = ModbusTransport("line", SerialLine(pair.b, 9600), timeout=0.3, retries=0)
        device = ModbusDevice("sdm120", 1, meter.profile, bus)
        try:
            durations, lost, tried = [], 0, 0
            for _ in range(8):
                started = time.monotonic()
                result = await device.poll()
                durations.append(time.monotonic() - started)
                tried += len(result.values)
                lost += sum(v is None for v in result.values.values())
                if not device.read_plan.learning:
                    break
            learning_polls = len(durations)
            refusals = meter.exception_replies
            result = await device.poll()  # learned: every value, nothing refused
        finally:
            bus.close()
            await sim.stop()
    print(f"9600 baud: learned in {learning_polls} polls, {lost} of {tried} values null "
          f"meanwhile, polls took {', '.join(f'{d:.2f}' for d in durations)} s")  # fmt: skip
    assert 2 <= learning_polls <= 6 and len(device.plan) == 10
    # the first poll: the profile's 3 requests (~0.1 s each with Eastron's 60 ms gap), the
    # pieces for 0.3 s of bus time (the transport's timeout), the one that passes it. (Once
    # learned, the 10 requests take ~0.9 s a poll at 9600 baud: the price of such a meter.)
    # ~0.6 s here; all 17 requests in one poll would take ~1.5 s.
    assert durations[0] < 1.0
    assert all(v is not None for v in result.values.values()) and result.degraded is None
    assert meter.exception_replies == refusals == 7
    assert sum("now read as" in r.message for r in caplog.records) == 1
