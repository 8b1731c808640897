"""The I2C drivers through the simulated byte transport: values, timing, CRC, NAK, unplugged."""

import asyncio
import ctypes
import errno
import subprocess
import sys
import threading
import time

import pytest

from vatio.common.links import I2cLine
from vatio.drivers.i2c.sensors import (
    Bme280Driver,
    Bme280Options,
    Scd4xDriver,
    Scd4xOptions,
    Sht3xDriver,
    Sht3xOptions,
    Sht4xDriver,
    Sht4xOptions,
    Sps30Driver,
    Sps30Options,
    WrongDevice,
)
from vatio.drivers.i2c.transport import BadCrc, I2cBus, I2cBusError, I2cNak, Smbus2Transport
from vatio.drivers.reading import BusUnavailable, DeviceTimeout
from vatio.simulators.i2c_sensors import (
    Bme280Sim,
    FakeClock,
    Scd4xSim,
    Sht3xSim,
    Sht4xSim,
    SimulatedI2cBus,
    Sps30Sim,
)


def make_bus(sim: SimulatedI2cBus) -> I2cBus:
    return I2cBus("kit", I2cLine("/dev/i2c-1"), sim.opener)


# ---------------------------------------------------------------------------------- BME280


@pytest.mark.parametrize(("t", "p", "h"), [(21.5, 780.2, 45.0), (-12.3, 1013.25, 88.8)])
async def test_bme280_forced_mode_reads_what_the_sensor_measures(t, p, h):
    sim = SimulatedI2cBus()
    dev = sim.add(Bme280Sim())
    dev.temperature_c, dev.pressure_hpa, dev.humidity_pct = t, p, h
    driver = Bme280Driver("air", make_bus(sim), Bme280Options())
    for _ in range(2):
        result = await driver.poll()
        assert result.values["temperature_c"] == pytest.approx(t, abs=0.01)
        assert result.values["pressure_hpa"] == pytest.approx(p, abs=0.01)
        assert result.values["humidity_pct"] == pytest.approx(h, abs=0.1)
        assert result.quality == {}
    assert dev.measurements == 2  # one forced measurement per poll
    assert dev.pointers.count(0x88) == 1 and dev.pointers.count(0xE1) == 1  # calibration once
    assert dev.regs[0xF4] & 0x03 == 0  # asleep again between polls


async def test_bme280_normal_mode_is_configured_once_and_then_only_read():
    sim = SimulatedI2cBus()
    dev = sim.add(Bme280Sim(address=0x77))
    driver = Bme280Driver("air", make_bus(sim), Bme280Options(address="0x77", mode="normal"))
    first = await driver.poll()  # waits for the first measurement after configuring
    dev.temperature_c = 30.0
    second = await driver.poll()
    assert first.values["temperature_c"] == pytest.approx(21.5, abs=0.01)
    assert second.values["temperature_c"] == pytest.approx(30.0, abs=0.01)
    assert dev.commands.count(0xF4) == 1  # ctrl_meas written once, at set-up
    assert dev.regs[0xF4] & 0x03 == 0x03


async def test_bme280_says_when_another_chip_answers():
    sim = SimulatedI2cBus()
    sim.add(Bme280Sim(chip_id=0x58))
    driver = Bme280Driver("air", make_bus(sim), Bme280Options())
    with pytest.raises(WrongDevice, match="chip id 0x58 is a BMP280, which has no humidity"):
        await driver.poll()


async def test_bme280_unplugged_then_plugged_reads_its_calibration_again():
    sim = SimulatedI2cBus()
    dev = sim.add(Bme280Sim())
    driver = Bme280Driver("air", make_bus(sim), Bme280Options())
    await driver.poll()
    dev.unplug()
    with pytest.raises(I2cNak, match="no acknowledge from address 0x76 on /dev/i2c-1"):
        await driver.poll()
    dev.plug()
    result = await driver.poll()
    assert result.values["temperature_c"] == pytest.approx(21.5, abs=0.01)
    assert dev.pointers.count(0x88) == 2


# ------------------------------------------------------------------------------ SHT3x/SHT4x


@pytest.mark.parametrize(
    ("sim_cls", "driver_cls", "options", "address"),
    [(Sht3xSim, Sht3xDriver, Sht3xOptions, 0x44), (Sht4xSim, Sht4xDriver, Sht4xOptions, 0x45)],
)
async def test_sht_single_shot_values(sim_cls, driver_cls, options, address):
    sim = SimulatedI2cBus()
    dev = sim.add(sim_cls(address))
    dev.temperature_c, dev.humidity_pct = 27.35, 33.3
    driver = driver_cls("th", make_bus(sim), options(address=address))
    result = await driver.poll()
    assert result.values == {
        "temperature_c": pytest.approx(27.35, abs=0.01),
        "humidity_pct": pytest.approx(33.3, abs=0.01),
    }
    assert dev.commands == [0x2400] if sim_cls is Sht3xSim else [0xFD]


def test_a_read_before_the_measurement_time_is_naked():
    sim = SimulatedI2cBus()
    sim.add(Sht3xSim())
    sim.write(0x44, bytes([0x24, 0x00]))
    with pytest.raises(OSError) as info:
        sim.read(0x44, 6)
    assert info.value.errno == errno.EREMOTEIO
    time.sleep(0.016)
    assert len(sim.read(0x44, 6)) == 6


async def test_sht3x_one_bad_crc_word_nulls_that_value_only():
    sim = SimulatedI2cBus()
    dev = sim.add(Sht3xSim())
    driver = Sht3xDriver("th", make_bus(sim), Sht3xOptions())
    dev.faults.bad_crc_next, dev.faults.bad_crc_word = 1, 1
    result = await driver.poll()
    assert result.values["temperature_c"] == pytest.approx(23.4, abs=0.01)
    assert result.values["humidity_pct"] is None
    assert result.quality == {"humidity_pct": "bad_crc"}
    assert (await driver.poll()).quality == {}  # the next reply is clean again


async def test_sht4x_every_word_bad_fails_the_poll_with_bad_crc():
    sim = SimulatedI2cBus()
    dev = sim.add(Sht4xSim())
    driver = Sht4xDriver("th", make_bus(sim), Sht4xOptions())
    original = dev.on_read

    def spoil_all(length):
        data = bytearray(original(length))
        data[2] ^= 1
        data[5] ^= 1
        return bytes(data)

    dev.on_read = spoil_all
    with pytest.raises(BadCrc, match=r"SHT4x at 0x44 on /dev/i2c-1 .*every word") as info:
        await driver.poll()
    assert info.value.code == "bad_crc"


async def test_a_nak_is_a_device_error_naming_the_address():
    sim = SimulatedI2cBus()
    dev = sim.add(Sht3xSim())
    driver = Sht3xDriver("th", make_bus(sim), Sht3xOptions())
    dev.faults.nak_next = 1
    with pytest.raises(I2cNak, match=r"address 0x44 on /dev/i2c-1 \(measure\)") as info:
        await driver.poll()
    assert "i2cdetect" in info.value.hint
    assert (await driver.poll()).values["temperature_c"] is not None


async def test_nobody_at_the_address_is_a_nak():
    sim = SimulatedI2cBus()
    driver = Sht3xDriver("th", make_bus(sim), Sht3xOptions(address=0x45))
    with pytest.raises(I2cNak, match="0x45"):
        await driver.poll()


# -------------------------------------------------------------------------------- SCD4x


async def test_scd4x_follows_the_sensors_five_second_cadence():
    clock = FakeClock()
    sim = SimulatedI2cBus()
    dev = sim.add(Scd4xSim(clock=clock))
    driver = Scd4xDriver("co2", make_bus(sim), Scd4xOptions(), monotonic=clock, sleep=clock.sleep)
    started = clock()
    first = await driver.poll()
    assert clock() - started >= 5.0  # the first measurement comes 5 s after start
    assert first.values == {
        "co2_ppm": 612.0,
        "temperature_c": pytest.approx(24.1, abs=0.01),
        "humidity_pct": pytest.approx(40.3, abs=0.01),
    }
    assert dev.commands[:2] == [0x3F86, 0x21B1]  # stop (refused in idle), then start
    reads = dev.commands.count(0xEC05)
    clock.t += 1.0
    dev.co2_ppm = 700
    again = await driver.poll()  # no new measurement yet: the latest one, not a new read
    assert again.values["co2_ppm"] == 612.0
    assert dev.commands.count(0xEC05) == reads
    clock.t += 4.5
    assert (await driver.poll()).values["co2_ppm"] == 700.0
    await driver.close()
    assert dev.commands[-1] == 0x3F86 and dev.started is None  # stopped on shutdown


async def test_scd4x_restarts_a_sensor_that_lost_power():
    clock = FakeClock()
    sim = SimulatedI2cBus()
    dev = sim.add(Scd4xSim(clock=clock))
    driver = Scd4xDriver("co2", make_bus(sim), Scd4xOptions(), monotonic=clock, sleep=clock.sleep)
    await driver.poll()
    dev.unplug()
    clock.t += 5
    with pytest.raises(I2cNak):
        await driver.poll()
    dev.plug()  # back, but idle: it never says "ready" again until started
    with pytest.raises(DeviceTimeout, match="no new measurement for"):
        await driver.poll()
    result = await driver.poll()  # started again
    assert result.values["co2_ppm"] == 612.0
    assert driver.restarts == 2


async def test_scd4x_read_measurement_before_data_is_ready_is_naked():
    clock = FakeClock()
    sim = SimulatedI2cBus()
    sim.add(Scd4xSim(clock=clock))
    sim.write(0x62, bytes([0x21, 0xB1]))
    sim.write(0x62, bytes([0xEC, 0x05]))
    clock.t += 0.01
    with pytest.raises(OSError):
        sim.read(0x62, 9)


# -------------------------------------------------------------------------------- SPS30


async def test_sps30_reads_mass_number_and_size_and_leaves_cleaning_alone():
    clock = FakeClock()
    sim = SimulatedI2cBus()
    dev = sim.add(Sps30Sim(clock=clock))
    driver = Sps30Driver("pm", make_bus(sim), Sps30Options(), monotonic=clock, sleep=clock.sleep)
    result = await driver.poll()
    assert result.values == {
        "pm1_0_ugm3": pytest.approx(8.1, abs=1e-3),
        "pm2_5_ugm3": pytest.approx(12.6, abs=1e-3),
        "pm4_0_ugm3": pytest.approx(14.9, abs=1e-3),
        "pm10_ugm3": pytest.approx(15.7, abs=1e-3),
        "nc0_5_per_cm3": pytest.approx(55.2, abs=1e-3),
        "nc1_0_per_cm3": pytest.approx(64.9, abs=1e-3),
        "nc2_5_per_cm3": pytest.approx(66.1, abs=1e-3),
        "nc4_0_per_cm3": pytest.approx(66.4, abs=1e-3),
        "nc10_per_cm3": pytest.approx(66.5, abs=1e-3),
        "typical_particle_size_um": pytest.approx(0.52, abs=1e-3),
    }
    assert driver.auto_cleaning_interval_s == 604800
    assert 0x8004 in dev.commands and dev.cleaning_interval_s == 604800  # read, not written
    assert dev.commands[dev.commands.index(0x8004) + 1] == 0x0010
    await driver.close()
    assert dev.commands[-1] == 0x0104 and dev.started is None


async def test_sps30_bad_crc_in_one_float_nulls_that_value():
    clock = FakeClock()
    sim = SimulatedI2cBus()
    dev = sim.add(Sps30Sim(clock=clock))
    driver = Sps30Driver("pm", make_bus(sim), Sps30Options(), monotonic=clock, sleep=clock.sleep)
    await driver.poll()
    clock.t += 1.0
    original = dev.on_read

    def spoil_pm25(length):
        data = bytearray(original(length))
        if length == 60:
            data[3 * 3 + 2] ^= 0xFF  # word 3: the low half of PM2.5
        return bytes(data)

    dev.on_read = spoil_pm25
    result = await driver.poll()
    assert result.values["pm2_5_ugm3"] is None
    assert result.quality == {"pm2_5_ugm3": "bad_crc"}
    assert result.values["pm10_ugm3"] == pytest.approx(15.7, abs=1e-3)


async def test_sps30_a_nan_is_an_invalid_value_not_a_number():
    clock = FakeClock()
    sim = SimulatedI2cBus()
    dev = sim.add(Sps30Sim(clock=clock))
    dev.mass[0] = float("nan")
    driver = Sps30Driver("pm", make_bus(sim), Sps30Options(), monotonic=clock, sleep=clock.sleep)
    result = await driver.poll()
    assert result.values["pm1_0_ugm3"] is None
    assert result.quality == {"pm1_0_ugm3": "invalid"}
    assert result.values["pm2_5_ugm3"] == pytest.approx(12.6, abs=1e-3)


# ----------------------------------------------------------------------------- the bus


async def test_a_missing_adapter_is_unavailable_with_the_fix_and_retried_later():
    def opener(device):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", device)

    bus = I2cBus("kit", I2cLine("/dev/i2c-1"), opener)
    driver = Sht3xDriver("th", bus, Sht3xOptions())
    with pytest.raises(BusUnavailable, match="cannot open I2C bus /dev/i2c-1") as info:
        await driver.poll()
    assert "raspi-config" in info.value.hint
    with pytest.raises(BusUnavailable, match="next try in"):
        await driver.poll()


async def test_a_bus_error_other_than_nak_is_reported_as_such():
    sim = SimulatedI2cBus()
    dev = sim.add(Sht3xSim())

    def timeout(data):
        raise OSError(errno.ETIMEDOUT, "Connection timed out")

    dev.on_write = timeout
    driver = Sht3xDriver("th", make_bus(sim), Sht3xOptions())
    with pytest.raises(I2cBusError, match="Connection timed out") as info:
        await driver.poll()
    assert info.value.code == "bus_error"


async def test_transactions_on_one_bus_never_overlap():
    sim = SimulatedI2cBus()
    sim.add(Sht3xSim(0x44))
    sim.add(Sht4xSim(0x45))
    sim.add(Bme280Sim())
    inside = threading.Lock()
    overlaps = []
    original = sim._device

    def guarded(address):
        if not inside.acquire(blocking=False):
            overlaps.append(address)
            return original(address)
        try:
            time.sleep(0.002)  # widen the window a concurrent call would hit
            return original(address)
        finally:
            inside.release()

    sim._device = guarded
    bus = make_bus(sim)
    drivers = [
        Sht3xDriver("a", bus, Sht3xOptions()),
        Sht4xDriver("b", bus, Sht4xOptions(address=0x45)),
        Bme280Driver("c", bus, Bme280Options()),
    ]
    for _ in range(3):
        results = await asyncio.gather(*(d.poll() for d in drivers))
        assert all(r.values["temperature_c"] is not None for r in results)
    assert overlaps == []
    assert bus.requests >= 3 * 6


async def test_the_bus_closes_when_its_last_driver_closes():
    sim = SimulatedI2cBus()
    sim.add(Sht3xSim())
    bus = make_bus(sim)
    a = Sht3xDriver("a", bus, Sht3xOptions())
    b = Sht3xDriver("b", bus, Sht3xOptions())
    await a.poll()
    await a.close()
    assert not sim.closed
    await b.close()
    assert sim.closed


# ----------------------------------------------------------------- the smbus2 transport


def test_smbus2_is_imported_only_when_an_i2c_bus_is_opened():
    # a fresh interpreter: this one may have loaded smbus2 for another test
    code = (
        "import sys\n"
        "from vatio.common.links import I2cLine\n"
        "from vatio.drivers.i2c.sensors import Sht3xDriver, Sht3xOptions\n"
        "from vatio.drivers.i2c.transport import I2cBus\n"
        "Sht3xDriver('th', I2cBus('kit', I2cLine('/dev/i2c-1')), Sht3xOptions())\n"
        "print('smbus2' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"  # a driver on a bus not yet opened: not loaded


async def test_the_smbus2_transport_names_a_missing_adapter():
    bus = I2cBus("kit", I2cLine("/dev/i2c-99"))  # the real opener: smbus2 on i2c-dev
    with pytest.raises(BusUnavailable, match="cannot open I2C bus /dev/i2c-99: No such file"):
        await bus.transfer(0x44, b"\x24\x00", what="measure")
    assert "smbus2" in sys.modules


def test_the_smbus2_transport_sends_i2c_messages_with_a_repeated_start(monkeypatch):
    import smbus2

    sim = SimulatedI2cBus()
    sim.add(Bme280Sim())
    calls = []

    def i2c_rdwr(self, *msgs):
        calls.append([(m.addr, m.flags, m.len) for m in msgs])
        for m in msgs:
            if m.flags & smbus2.smbus2.I2C_M_RD:
                data = sim.read(m.addr, m.len)
                ctypes.memmove(m.buf, data, m.len)
            else:
                sim.write(m.addr, bytes(m))

    monkeypatch.setattr(smbus2.SMBus, "open", lambda self, bus: None)
    monkeypatch.setattr(smbus2.SMBus, "i2c_rdwr", i2c_rdwr)
    transport = Smbus2Transport("/dev/i2c-1")
    assert transport.write_read(0x76, b"\xd0", 1) == b"\x60"  # chip id, one transaction
    transport.write(0x76, b"\xf2\x05")  # ctrl_hum := 5
    transport.write(0x76, b"\xf2")  # the register pointer
    assert transport.read(0x76, 1) == b"\x05"
    assert calls == [[(0x76, 0, 1), (0x76, 1, 1)], [(0x76, 0, 2)], [(0x76, 0, 1)], [(0x76, 1, 1)]]
