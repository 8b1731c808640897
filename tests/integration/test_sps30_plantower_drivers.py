"""The SPS30 (SHDLC) and PMS7003/PMSA003 drivers against their byte-exact simulators on a real
pty pair, in process: setup commands, values, no-new-data, state errors, status flags, bad
checksums, garbage and silence."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from vatio.common.links import SerialLine
from vatio.drivers.reading import DeviceError, DeviceTimeout, GarbledReply
from vatio.drivers.uart import shdlc, sps30
from vatio.drivers.uart.sensors import PlantowerOptions, Pms7003Driver, Pmsa003Driver
from vatio.drivers.uart.sps30_uart import Sps30Options, Sps30Refused, Sps30UartDriver
from vatio.simulators.serial_pair import SerialPair
from vatio.simulators.uart_sensors import (
    SPS30_VALUES,
    LineNoise,
    Pms7003Sim,
    Pmsa003Sim,
    Sps30Sim,
    UartSensorSim,
)

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def on_a_pty(tmp_path, sim_class: type[UartSensorSim], noise: LineNoise | None = None,
                   seed: int = 1) -> AsyncIterator[tuple[UartSensorSim, SerialLine]]:  # fmt: skip
    if not SerialPair.available():
        pytest.fail("socat is not installed: run ./scripts/test as root (apt-get install socat)")
    pair = SerialPair(tmp_path, sim_class.__name__).start()
    sim = sim_class(pair.a, noise=noise, seed=seed)
    await sim.start()
    try:
        yield sim, SerialLine(pair.b, 115200)
    finally:
        await sim.stop()
        pair.stop()


async def test_sps30_sets_up_and_reads_values_with_stuffed_bytes(tmp_path):
    async with on_a_pty(tmp_path, Sps30Sim) as (sim, line):
        sim.fixed = dict(SPS30_VALUES)
        driver = Sps30UartDriver("pm", line, Sps30Options(auto_cleaning_interval_h=72,
                                                          fan_cleaning_on_start=True))  # fmt: skip
        try:
            result = await driver.poll()
            assert isinstance(sim, Sps30Sim)
            assert sim.measuring and sim.fan_cleanings == 1
            assert sim.auto_cleaning_s == 72 * 3600 == driver.auto_cleaning_interval_s
            assert driver.serial_number == sim.serial_number
            assert result.degraded is None and result.quality == {}
            assert result.values == pytest.approx(sim.sent, abs=5e-4)
            assert result.values["pm2_5_ugm3"] == 15.84
            # every float of these values holds 7E or 7D: the reply was stuffed
            raw = shdlc.miso(3, sps30.encode_measured_values(SPS30_VALUES))
            assert raw.count(b"\x7d") >= 10
        finally:
            await driver.close()


async def test_sps30_default_auto_cleaning_interval_is_read_not_written(tmp_path):
    async with on_a_pty(tmp_path, Sps30Sim) as (sim, line):
        driver = Sps30UartDriver("pm", line)
        try:
            await driver.poll()
            assert driver.auto_cleaning_interval_s == 604_800  # 168 h
            cmds = [shdlc.decode_mosi(c) for c in sim.commands]
            assert [c.data for c in cmds if c.command == sps30.AUTO_CLEANING_INTERVAL] == [b"\0"]
        finally:
            await driver.close()


async def test_sps30_no_new_data_is_a_quality_flag(tmp_path):
    async with on_a_pty(tmp_path, Sps30Sim) as (_, line):
        driver = Sps30UartDriver("pm", line)
        try:
            assert (await driver.poll()).values["pm1_0_ugm3"] is not None
            driver.no_data_wait = 0.05  # faster than the sensor's 1 s
            result = await driver.poll()
            assert set(result.values.values()) == {None}
            assert set(result.quality.values()) == {"no_new_data"}
        finally:
            await driver.close()


async def test_sps30_state_errors_fail_the_poll_with_the_code_in_words(tmp_path):
    async with on_a_pty(tmp_path, Sps30Sim) as (sim, line):
        assert isinstance(sim, Sps30Sim)
        driver = Sps30UartDriver("pm", line)
        try:
            await driver.poll()
            sim.state_error = 0x28
            with pytest.raises(Sps30Refused, match="0x28: internal function argument out of"):
                await driver.poll()
            sim.state_error = 0
            sim.measuring = False  # the sensor was reset: idle
            with pytest.raises(Sps30Refused, match="0x43: command not allowed in current"):
                await driver.poll()
            result = await driver.poll()  # measurement started again
            assert sim.measuring and result.values["pm10_ugm3"] is not None
        finally:
            await driver.close()


async def test_sps30_status_flag_degrades_with_the_register_in_words(tmp_path):
    async with on_a_pty(tmp_path, Sps30Sim) as (sim, line):
        assert isinstance(sim, Sps30Sim)
        sim.status_register = 1 << 4
        driver = Sps30UartDriver("pm", line)
        try:
            result = await driver.poll()
            assert result.values["pm2_5_ugm3"] is not None  # values still published
            assert result.degraded is not None
            assert "fan failure" in result.degraded and "0x00000010" in result.degraded
        finally:
            await driver.close()


async def test_sps30_bad_checksums_are_named_with_their_byte(tmp_path):
    async with on_a_pty(tmp_path, Sps30Sim, LineNoise(bad_checksum=1.0)) as (_, line):
        driver = Sps30UartDriver("pm", line)
        try:
            with pytest.raises(GarbledReply) as err:
                await driver.poll()
            assert "the last frame was rejected: checksum" in str(err.value)
            assert "of the frame)" in str(err.value)
        finally:
            await driver.close()


async def test_sps30_silence_is_a_timeout_with_the_baud_rate_hint(tmp_path):
    async with on_a_pty(tmp_path, Sps30Sim) as (sim, line):
        assert isinstance(sim, Sps30Sim)
        sim.silent = True
        driver = Sps30UartDriver("pm", SerialLine(line.port, 9600))
        try:
            with pytest.raises(DeviceTimeout, match="did not answer") as err:
                await driver.poll()
            assert "baudrate: 115200" in err.value.hint
            assert "115200" in driver.describe()
        finally:
            await driver.close()


async def test_sps30_reads_through_garbage_and_half_frames(tmp_path):
    noise = LineNoise(garbage=0.3, partial=0.1, bad_checksum=0.1)
    async with on_a_pty(tmp_path, Sps30Sim, noise, seed=7) as (sim, line):
        driver = Sps30UartDriver("pm", line)
        good = 0
        try:
            for _ in range(8):
                with contextlib.suppress(DeviceError):
                    result = await driver.poll()
                    if result.values["pm2_5_ugm3"] is not None:
                        assert result.values == pytest.approx(sim.sent, abs=5e-4)
                        good += 1
            assert good >= 3
        finally:
            await driver.close()


async def test_pms7003_passive_read_publishes_cf1_and_counts(tmp_path):
    async with on_a_pty(tmp_path, Pms7003Sim) as (sim, line):
        sim.fixed = {"pm2_5_ugm3": 40}
        driver = Pms7003Driver("pms", SerialLine(line.port), PlantowerOptions(mode="passive"))
        try:
            result = await driver.poll()
            assert not sim.active  # put in passive mode over the wire
            assert isinstance(sim, Pms7003Sim)
            expected = {**sim.sent, **sim.sent_cf1_names, **sim.sent_counts}
            assert result.values == pytest.approx(expected)
            assert result.values["pm2_5_cf1_ugm3"] == 44 and result.values["pm2_5_ugm3"] == 40
            assert result.degraded is None
        finally:
            await driver.close()


async def test_pmsa003_error_code_degrades_the_device(tmp_path):
    noise = LineNoise(garbage=0.4, bad_checksum=0.2)
    async with on_a_pty(tmp_path, Pmsa003Sim, noise) as (sim, line):
        assert isinstance(sim, Pmsa003Sim)
        sim.error_code = 0x05
        sim.period = 0.2
        driver = Pmsa003Driver("pms", SerialLine(line.port), PlantowerOptions())
        try:
            result = await driver.poll()
            assert result.values["pm2_5_ugm3"] is not None
            assert result.degraded is not None and "error code 0x05 (byte 29" in result.degraded
        finally:
            await driver.close()
