"""Finding checksummed frames in a serial byte stream that may hold noise.

UART sensors send fixed-layout frames (a header, a length, a checksum). Between them a line
can carry anything: boot noise, half a frame after a reconnect, garbage from a wrong baud
rate. :class:`FrameScanner` takes bytes as they come and returns only frames that pass their
checksum, skipping to the next possible header after anything else. It counts what it
dropped, so a driver can report a noisy line instead of crashing or guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class FrameStats:
    frames: int = 0  # valid frames found
    bad_frames: int = 0  # right header and length, wrong checksum or trailer
    noise_bytes: int = 0  # bytes skipped while looking for a header


class FrameScanner:
    """Incremental frame finder for one frame format.

    ``length(buffer)`` returns the full length of a frame that starts at ``buffer[0]`` (which
    begins with ``header``), or None while too few bytes are there to know it; ``valid(frame)``
    checks its checksum and fixed bytes.
    """

    MAX_BUFFER = 4096  # a line that never yields a frame must not grow memory

    def __init__(
        self,
        header: bytes,
        length: Callable[[bytes], int | None],
        valid: Callable[[bytes], bool],
    ) -> None:
        self.header = header
        self.length = length
        self.valid = valid
        self.stats = FrameStats()
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames: list[bytes] = []
        while True:
            start = self._buf.find(self.header)
            if start < 0:
                # keep a tail that could be the start of a header
                keep = len(self.header) - 1
                dropped = max(len(self._buf) - keep, 0)
                self.stats.noise_bytes += dropped
                del self._buf[:dropped]
                break
            if start:
                self.stats.noise_bytes += start
                del self._buf[:start]
            size = self.length(bytes(self._buf))
            if size is None or len(self._buf) < size:
                if len(self._buf) > self.MAX_BUFFER:
                    self.stats.noise_bytes += len(self._buf)
                    self._buf.clear()
                break
            frame = bytes(self._buf[:size])
            if self.valid(frame):
                self.stats.frames += 1
                frames.append(frame)
                del self._buf[:size]
            else:
                # not a frame: the header was noise; look again from the next byte
                self.stats.bad_frames += 1
                del self._buf[:1]
        return frames
