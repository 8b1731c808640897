"""Where a bus is: a TCP endpoint or a serial line. Plain settings, nothing opened yet."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TcpEndpoint:
    host: str
    port: int
    max_connections: int = 1
    rtu_framing: bool = False  # RTU frames (with CRC) over TCP, as cheap gateways speak

    def describe(self) -> str:
        return f"{self.host}:{self.port}" + (" (RTU over TCP)" if self.rtu_framing else "")


@dataclass(frozen=True)
class SerialLine:
    port: str
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8

    def describe(self) -> str:
        return f"{self.port} {self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"

    @property
    def bits_per_char(self) -> int:
        """Start bit + data + parity + stop bits."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits
