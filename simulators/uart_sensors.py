"""Byte-exact UART sensor simulators: SDS011, PMS5003/PMS7003/PMSA003, MH-Z19B and the
SPS30 (SHDLC) on a serial port.

Each opens the device end of a serial line (usually a :class:`~vatio.simulators.serial_pair.
SerialPair`) and speaks the sensor's real protocol: it answers the commands the manufacturer
documents and, in active mode, sends a frame every ``period`` seconds. :class:`LineNoise`
spoils the line on purpose (garbage between frames, half frames, wrong checksums) so the
drivers' resynchronisation is tested on real bytes. ``sent`` keeps the values of the last good
frame, for tests to compare with what the agent published.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
from dataclasses import dataclass

import serial_asyncio_fast

from vatio.common import clock as simulated_or_wall
from vatio.drivers.uart import mhz19, pms5003, sds011, shdlc, sps30
from vatio.drivers.uart.frames import FrameScanner


@dataclass
class LineNoise:
    garbage: float = 0.0  # chance of random bytes before a frame
    partial: float = 0.0  # chance of sending only the first half of a frame (then nothing)
    bad_checksum: float = 0.0  # chance of a frame with a wrong checksum


def city_pm25(t: float, seed: int = 0) -> float:
    """A plausible urban PM2.5 (µg/m³): a morning and an evening peak on a 10–35 baseline."""
    hour = (t / 3600 - 6) % 24  # central Mexico, UTC-6
    peaks = 18 * math.exp(-((hour - 8) ** 2) / 4) + 12 * math.exp(-((hour - 20) ** 2) / 6)
    return round(12 + peaks + 3 * math.sin(t / 600 + seed), 1)


class _FdWriter:
    """Writes to a non-blocking pty master (:class:`~vatio.simulators.serial_pair.PtyPair`);
    a frame that does not fit (nobody reads the other end) is dropped, as on a real line."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self.fd = fd
        self.loop = loop

    def write(self, data: bytes) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            os.write(self.fd, data)

    def close(self) -> None:
        self.loop.remove_reader(self.fd)  # the fd belongs to the PtyPair


class UartSensorSim:
    period = 1.0  # seconds between frames in active mode

    def __init__(self, port: str, noise: LineNoise | None = None, seed: int = 0) -> None:
        self.port = port
        self.noise = noise or LineNoise()
        self.rng = random.Random(seed)
        self.seed = seed
        self.active = True
        self.asleep = False
        self.sent: dict[str, float] = {}
        self.frames_sent = 0
        self.commands: list[bytes] = []
        self.fixed: dict[str, float] | None = None  # tests may pin the values
        self._writer: asyncio.StreamWriter | _FdWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def scanner(self) -> FrameScanner:
        raise NotImplementedError

    def frame(self) -> bytes:
        """The data frame for now; sets ``self.sent``."""
        raise NotImplementedError

    def on_command(self, command: bytes) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        reader, self._writer = await serial_asyncio_fast.open_serial_connection(url=self.port)
        self._tasks = [
            asyncio.create_task(self._listen(reader)),
            asyncio.create_task(self._stream()),
        ]

    async def start_fd(self, fd: int) -> None:
        """Speak on the master end of a :class:`~vatio.simulators.serial_pair.PtyPair`."""
        loop = asyncio.get_running_loop()
        scanner = self.scanner()

        def readable() -> None:
            try:
                chunk = os.read(fd, 256)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # EIO: the line hung up; nothing to answer
                return
            for command in scanner.feed(chunk):
                self.commands.append(command)
                self.on_command(command)

        loop.add_reader(fd, readable)
        self._writer = _FdWriter(fd, loop)
        self._tasks = [asyncio.create_task(self._stream())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        scanner = self.scanner()
        while chunk := await reader.read(256):
            for command in scanner.feed(chunk):
                self.commands.append(command)
                self.on_command(command)

    async def _stream(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            if self.active and not self.asleep:
                self.send(self.frame())

    def send(self, frame: bytes) -> None:
        if self._writer is None:
            return
        n = self.noise
        if self.rng.random() < n.garbage:
            self._writer.write(
                bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 12)))
            )
        if self.rng.random() < n.partial:
            self._writer.write(frame[: len(frame) // 2])
            return
        if self.rng.random() < n.bad_checksum:
            frame = frame[:-2] + bytes([frame[-2] ^ 0x5A]) + frame[-1:]
        self.frames_sent += 1
        self._writer.write(frame)


class Sds011Sim(UartSensorSim):
    def scanner(self) -> FrameScanner:
        return FrameScanner(
            bytes([sds011.HEAD, sds011.COMMAND]),
            lambda b: 19,
            lambda f: f[18] == sds011.TAIL and sum(f[2:17]) & 0xFF == f[17],
        )

    def frame(self) -> bytes:
        pm25 = (
            self.fixed["pm2_5_ugm3"]
            if self.fixed
            else city_pm25(simulated_or_wall.now(), self.seed)
        )
        pm10 = self.fixed["pm10_ugm3"] if self.fixed else round(pm25 * 1.6, 1)
        self.sent = {"pm2_5_ugm3": pm25, "pm10_ugm3": pm10}
        return sds011.data_frame(pm25, pm10)

    def _reply(self, cmd: int, d1: int, d2: int) -> None:
        body = bytes([cmd, d1, d2, 0, 0xA1, 0x60])
        self.send(
            bytes([sds011.HEAD, sds011.REPLY]) + body + bytes([sum(body) & 0xFF, sds011.TAIL])
        )

    def on_command(self, command: bytes) -> None:
        cmd, d1, d2 = command[2], command[3], command[4]
        if cmd == sds011.CMD_SLEEP and d1 == 1:
            self.asleep = d2 == 0
            self._reply(cmd, d1, d2)
        elif self.asleep:
            return  # a sleeping SDS011 ignores everything but wake
        elif cmd == sds011.CMD_MODE and d1 == 1:
            self.active = d2 == 0
            self._reply(cmd, d1, d2)
        elif cmd == sds011.CMD_QUERY:
            self.send(self.frame())


class Pms5003Sim(UartSensorSim):
    word13 = 0x9700  # "reserved" on the PMS5003; seen as 97 00 on real devices
    error_code = 0  # PMS7003/PMSA003: byte 29 (tests set it)

    def scanner(self) -> FrameScanner:
        return FrameScanner(
            pms5003.HEADER,
            lambda b: 7,
            lambda f: sum(f[:5]) & 0xFFFF == (f[5] << 8 | f[6]),
        )

    def frame(self) -> bytes:
        pm25 = (
            self.fixed["pm2_5_ugm3"]
            if self.fixed
            else city_pm25(simulated_or_wall.now(), self.seed)
        )
        atm = (round(pm25 * 0.7), round(pm25), round(pm25 * 1.5))
        cf1 = tuple(round(v * 1.1) for v in atm)
        self.sent = {"pm1_0_ugm3": atm[0], "pm2_5_ugm3": atm[1], "pm10_ugm3": atm[2]}
        self.sent_cf1 = {"pm1_0_ugm3": cf1[0], "pm2_5_ugm3": cf1[1], "pm10_ugm3": cf1[2]}
        counts = (900, 300, 60, 10, 2, 1)
        self.sent_cf1_names = {
            "pm1_0_cf1_ugm3": cf1[0],
            "pm2_5_cf1_ugm3": cf1[1],
            "pm10_cf1_ugm3": cf1[2],
        }
        self.sent_counts = dict(
            zip(
                (f"particles_gt{s}um_per_dl" for s in ("0_3", "0_5", "1_0", "2_5", "5_0", "10")),
                counts,
                strict=True,
            )
        )
        word13 = (self.word13 & 0xFF00) | self.error_code
        return pms5003.data_frame(atm, cf1, counts, word13)  # type: ignore[arg-type]

    def on_command(self, command: bytes) -> None:
        cmd, data = command[2], command[4]
        if cmd == 0xE4:
            self.asleep = data == 0
        elif cmd == 0xE1:
            self.active = data == 1
        elif cmd == 0xE2 and not self.asleep:
            self.send(self.frame())


class Mhz19Sim(UartSensorSim):
    def __init__(self, port: str, noise: LineNoise | None = None, seed: int = 0) -> None:
        super().__init__(port, noise, seed)
        self.active = False  # the MH-Z19B only answers

    def scanner(self) -> FrameScanner:
        return FrameScanner(b"\xff\x01", lambda b: 9, lambda f: mhz19.checksum(f) == f[8])

    def frame(self) -> bytes:
        co2 = (
            int(self.fixed["co2_ppm"])
            if self.fixed
            else 420 + int(200 * abs(math.sin(simulated_or_wall.now() / 900)))
        )
        self.sent = {"co2_ppm": float(co2)}
        return mhz19.reply(co2)

    def on_command(self, command: bytes) -> None:
        if command[2] == 0x86:
            self.send(self.frame())


class Pms7003Sim(Pms5003Sim):
    """The PMS7003: the PMS5003's frame and commands; byte 28 a version, byte 29 an error code."""

    word13 = 0x8000  # version 0x80, error code 0 (the byte values are illustrative)


class Pmsa003Sim(Pms7003Sim):
    """The PMSA003: the same frame as the PMS7003."""

    word13 = 0x9100


# Each float of these values holds a byte SHDLC must stuff (0x7E or 0x7D), so the drivers'
# unstuffing is exercised on every reply: 3.97 = 40 7E 14 7B, 15.84 = 41 7D 70 A4 …
SPS30_VALUES = {
    "pm1_0_ugm3": 3.97,
    "pm2_5_ugm3": 15.84,
    "pm4_0_ugm3": 15.88,
    "pm10_ugm3": 63.5,
    "nc0_5_per_cm3": 15.9,
    "nc1_0_per_cm3": 15.92,
    "nc2_5_per_cm3": 15.93,
    "nc4_0_per_cm3": 254.0,
    "nc10_per_cm3": 254.0,
    "typical_particle_size_um": 0.99,
}


class Sps30Sim(UartSensorSim):
    """A Sensirion SPS30 on UART: SHDLC request/response, one new measurement per second
    while measuring, idle after power-up and after a reset.

    Faults, besides :class:`LineNoise` (garbage, half frames, broken checksums): ``silent``
    (answers nothing), ``state_error`` (an error code in every reply to "read measured
    values"), ``status_register`` (device status bits, which also set state bit 7).
    """

    period = 1.0  # the SPS30 measures once per second

    def __init__(self, port: str, noise: LineNoise | None = None, seed: int = 0) -> None:
        super().__init__(port, noise, seed)
        self.active = False  # it never sends unasked
        self.measuring = False
        self.new_data = False
        self.auto_cleaning_s = sps30.DEFAULT_AUTO_CLEANING_S
        self.fan_cleanings = 0
        self.serial_number = "3F1C9A07D2E64B58"
        self.silent = False
        self.state_error = 0
        self.status_register = 0

    def scanner(self) -> FrameScanner:
        def valid(frame: bytes) -> bool:
            try:
                shdlc.decode_mosi(frame)
            except shdlc.ShdlcError:
                return False
            return True

        return FrameScanner(bytes([shdlc.FLAG]), shdlc.MisoReceiver.length, valid)

    async def _stream(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            if self.measuring:
                self.new_data = True

    def frame(self) -> bytes:
        if self.fixed:
            values = {q: self.fixed.get(q, SPS30_VALUES[q]) for q in sps30.QUANTITIES}
        else:
            pm25 = city_pm25(simulated_or_wall.now(), self.seed)
            # the typical particle size stays 0.99 µm (3F 7D 70 A4): every reply is stuffed
            values = dict(SPS30_VALUES)
            values.update(
                pm1_0_ugm3=round(pm25 * 0.8, 2),
                pm2_5_ugm3=pm25,
                pm4_0_ugm3=round(pm25 * 1.05, 2),
                pm10_ugm3=round(pm25 * 1.1, 2),
                nc0_5_per_cm3=round(pm25 * 5.2, 2),
                nc1_0_per_cm3=round(pm25 * 6.1, 2),
                nc2_5_per_cm3=round(pm25 * 6.2, 2),
                nc4_0_per_cm3=round(pm25 * 6.21, 2),
                nc10_per_cm3=round(pm25 * 6.22, 2),
            )
        data = sps30.encode_measured_values(values)
        # what the agent can see: the values as float32
        decoded = sps30.parse_measured_values(data)
        assert decoded is not None
        self.sent = decoded.values
        return data

    def _reply(self, command: int, data: bytes = b"", error: int = 0) -> None:
        state = error | (shdlc.STATUS_FLAG if self.status_register else 0)
        self.send(shdlc.miso(command, data, state))

    def on_command(self, command: bytes) -> None:
        if self.silent:
            return
        req = shdlc.decode_mosi(command)
        cmd, data = req.command, req.data
        if cmd == sps30.START_MEASUREMENT:
            if data != bytes([0x01, sps30.FLOAT_FORMAT]):
                self._reply(cmd, error=0x04)
            elif self.measuring:
                self._reply(cmd, error=0x43)
            else:
                self.measuring = True
                self._reply(cmd)
        elif cmd == sps30.STOP_MEASUREMENT:
            self.measuring = self.new_data = False
            self._reply(cmd)
        elif cmd == sps30.READ_MEASURED_VALUES:
            if self.state_error:
                self._reply(cmd, error=self.state_error)
            elif not self.measuring:
                self._reply(cmd, error=0x43)
            elif self.new_data:
                self.new_data = False
                self._reply(cmd, self.frame())
            else:
                self._reply(cmd)  # no new values yet: an empty reply
        elif cmd == sps30.START_FAN_CLEANING:
            if self.measuring:
                self.fan_cleanings += 1
                self._reply(cmd)
            else:
                self._reply(cmd, error=0x43)
        elif cmd == sps30.AUTO_CLEANING_INTERVAL and data[:1] == b"\x00" and len(data) in (1, 5):
            if len(data) == 5:
                self.auto_cleaning_s = int.from_bytes(data[1:], "big")
                self._reply(cmd)
            else:
                self._reply(cmd, self.auto_cleaning_s.to_bytes(4, "big"))
        elif cmd == sps30.DEVICE_INFORMATION and len(data) == 1:
            text = {
                sps30.INFO_PRODUCT_TYPE: sps30.PRODUCT_TYPE,
                sps30.INFO_SERIAL_NUMBER: self.serial_number,
            }.get(data[0])
            if text is None:
                self._reply(cmd, error=0x04)
            else:
                self._reply(cmd, text.encode() + b"\x00")
        elif cmd == sps30.READ_STATUS_REGISTER and len(data) == 1:
            register = self.status_register
            if data[0] == 1:
                self.status_register = 0
            self._reply(cmd, register.to_bytes(4, "big") + b"\x00")
        elif cmd == sps30.RESET:
            self.measuring = self.new_data = False
            self._reply(cmd)
        elif cmd in (
            sps30.AUTO_CLEANING_INTERVAL,
            sps30.DEVICE_INFORMATION,
            sps30.READ_STATUS_REGISTER,
        ):
            self._reply(cmd, error=0x01)
        else:
            self._reply(cmd, error=0x02)
