"""Per-device data completeness from ``seq``, computed by the ingest bridge *from the database*.

**Where the state lives, and why.** ``seq`` counts a device's messages on one stream, so a
gap in it is data lost upstream. A bridge cannot find gaps from what *it* received: N bridges
in a shared subscription each get an arbitrary share of a device's messages (bridge 1 sees
seq 1, 3, 5 …, bridge 2 sees 2, 4, 6 …), and a restarted bridge has forgotten what it saw.
But every message already lands in the database as a point holding its ``seq`` (one point per
(series, ts): a redelivered message is the same point), so the database holds the union of
what every bridge wrote, across restarts. The bridge therefore keeps nothing but *which hours
it touched* and answers completeness with InfluxQL:

1. per (stream, hour) it touched: ``count/min/max("seq") … GROUP BY site, device`` — one
   query for every device; a device is complete when ``count = max - min + 1`` and its first
   seq follows the last seq of its previous hour (read from the previous hour's
   ``completeness`` point, so a boundary never scans history);
2. only for the devices where that fails: their ``seq`` values of the hour, in time order,
   which give the exact missing ranges (and resets: a seq going back while time goes on);
3. the arrivals each bridge counted (below), summed over bridges, minus the distinct points
   stored, give the duplicates; their ``late`` counts are summed.

Each bridge writes its own arrival counts, per (site, device, stream, hour), cumulative, in
``ingest_arrivals`` with a ``bridge`` tag (point time = the hour): the counts of N bridges add
up, and a restarted bridge first reads back its own counts of an hour before adding to them.
Recomputing an hour writes the same ``completeness`` point again (time = the hour), so every
bridge may compute, and a late arrival that fills a gap makes the gap disappear on the next
pass. Measured cost and the alternatives: README, "Running a fleet".

Written (InfluxDB 1.x: the passes need InfluxQL, ``api: v1``):

- ``completeness,site,device,stream`` at the hour: ``received`` (distinct messages stored),
  ``expected``, ``missing``, ``ratio`` (received / expected), ``gaps`` (``"5-7,12"``),
  ``gap_count``, ``duplicates``, ``late``, ``resets``, ``first_seq``, ``last_seq``;
- ``ingest_arrivals,site,device,stream,bridge`` at the hour: ``received``, ``late``,
  ``backwards`` (this bridge's cumulative counts);
- ``last_seen,site,device`` at the pass: ``ts`` (ms of the newest message), ``seq``, ``lag_s``
  (arrival − ts of that message).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from vatio.agent.config import InfluxConfig

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
# a previous hour's completeness point is looked for this far back (a device silent longer
# starts a new run: its gap is the time it was silent, which last_seen and alerts show)
LOOKBACK_MS = 24 * HOUR_MS
# hours not touched for this long are forgotten (their counts are in the database)
FORGET_AFTER_S = 2 * 3600.0
DETAIL_CHUNK = 50  # devices per query for the seq values of incomplete hours


@dataclass(frozen=True, slots=True)
class Seqs:
    """What one device's seq values of one hour (in time order) say."""

    received: int
    expected: int
    gaps: tuple[tuple[int, int], ...]
    resets: int
    repeated: int  # the same seq again at another time (a device re-sent with a new ts)
    first: int | None
    last: int | None

    @property
    def missing(self) -> int:
        return sum(b - a + 1 for a, b in self.gaps)


def find_gaps(seqs: Iterable[int], before: int | None = None) -> Seqs:
    """Missing seq ranges in ``seqs`` (time order), after ``before`` (the last seq of the
    previous hour, if known). A seq lower than the one before it while time goes on is a
    reset (a device that lost its counter): a new run starts there, nothing is missing."""
    gaps: list[tuple[int, int]] = []
    resets = repeated = received = 0
    prev = before
    first: int | None = None
    for s in seqs:
        received += 1
        if first is None:
            first = s
        if prev is not None:
            if s > prev + 1:
                gaps.append((prev + 1, s - 1))
            elif s == prev:
                repeated += 1
            elif s < prev:
                resets += 1
        prev = s
    missing = sum(b - a + 1 for a, b in gaps)
    return Seqs(received, received + missing, tuple(gaps), resets, repeated, first, prev)


# A device losing every other message at 10 Hz has 18,000 ranges an hour: the text stops
# here (ending in ",…"); gap_count and missing stay exact
MAX_GAPS_TEXT = 4096


def format_gaps(gaps: Iterable[tuple[int, int]], limit: int = MAX_GAPS_TEXT) -> str:
    """``"5-7,12"``; cut after ``limit`` characters, ending in ``",…"``."""
    out: list[str] = []
    size = 0
    for a, b in gaps:
        part = f"{a}" if a == b else f"{a}-{b}"
        size += len(part) + 1
        if size > limit:
            out.append("…")
            break
        out.append(part)
    return ",".join(out)


def parse_gaps(text: str) -> list[tuple[int, int]]:
    """The ranges of :func:`format_gaps` (those listed, when it was cut)."""
    out = []
    for part in filter(None, text.split(",")):
        if part == "…":
            break
        a, _, b = part.partition("-")
        out.append((int(a), int(b or a)))
    return out


class QueryError(RuntimeError):
    pass


class InfluxQL:
    """``GET /query`` of InfluxDB 1.x, results with millisecond epochs."""

    def __init__(self, cfg: InfluxConfig) -> None:
        self.cfg = cfg
        self._base = {"db": cfg.database, "epoch": "ms"}
        if cfg.retention_policy:
            self._base["rp"] = cfg.retention_policy
        if cfg.username is not None:
            self._base["u"] = cfg.username
            self._base["p"] = cfg.password.get_secret_value() if cfg.password else ""

    def series(self, q: str) -> list[dict[str, Any]]:
        url = f"{self.cfg.url}/query?{urllib.parse.urlencode({**self._base, 'q': q})}"
        try:
            with urllib.request.urlopen(url, timeout=self.cfg.timeout) as r:
                body = json.load(r)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise QueryError(f"{self.cfg.url}: query failed: {exc}") from None
        out: list[dict[str, Any]] = []
        for result in body.get("results", []):
            if "error" in result:
                raise QueryError(f"{self.cfg.url}: {result['error']}")
            out += result.get("series", [])
        return out


def quote(text: str) -> str:
    """An InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _tag(text: str) -> str:
    return text.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


@dataclass
class _Hour:
    counts: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # received, late, back
    loaded: bool = False  # this bridge's earlier counts read back from the database
    touched: float = 0.0


class CompletenessTracker:
    """What one bridge records (thread-safe) and its periodic pass (:meth:`run_pass`)."""

    def __init__(self, bridge: str, late_after_s: float = 120.0) -> None:
        self.bridge = bridge
        self.late_after_ms = int(late_after_s * 1000)
        self._lock = threading.Lock()
        self._hours: dict[tuple[str, int], _Hour] = {}
        self._dirty: set[tuple[str, int]] = set()
        self._last: dict[tuple[str, str, str], tuple[int, int]] = {}  # seq, ts of the newest
        self._seen: dict[tuple[str, str], tuple[int, int, int]] = {}  # ts, seq, arrival
        self.backwards = 0  # seq lower than the newest one seen, with a later ts: a reset
        self.late = 0
        self.passes = 0
        self.pass_seconds = 0.0
        self.last_error = ""

    def record(self, observed: list[tuple[str, str, str, int, int]], arrival_ms: int) -> None:
        """Messages written and acknowledged: count them."""
        late_before = arrival_ms - self.late_after_ms
        now = time.monotonic()
        with self._lock:
            hours, last, seen = self._hours, self._last, self._seen
            current: tuple[str, int] | None = None
            hour: _Hour | None = None
            for stream, site, device, seq, ms in observed:
                key = (stream, ms - ms % HOUR_MS)
                if key != current:
                    current = key
                    hour = hours.get(key)
                    if hour is None:
                        hour = hours[key] = _Hour()
                    hour.touched = now
                    self._dirty.add(key)
                assert hour is not None
                c = hour.counts.get((site, device))
                if c is None:
                    c = hour.counts[(site, device)] = [0, 0, 0]
                c[0] += 1
                if ms < late_before:
                    c[1] += 1
                    self.late += 1
                k = (stream, site, device)
                prev = last.get(k)
                if prev is None or ms > prev[1]:
                    if prev is not None and seq < prev[0]:
                        c[2] += 1
                        self.backwards += 1
                    last[k] = (seq, ms)
                s = seen.get((site, device))
                if s is None or ms >= s[0]:
                    seen[(site, device)] = (ms, seq, arrival_ms)

    @property
    def known_sites(self) -> set[str]:
        with self._lock:
            return {site for site, _ in self._seen}

    def run_pass(self, db: InfluxQL, write: Callable[[list[str]], None]) -> int:
        """Write this bridge's counts and last-seen, then recompute every touched hour;
        returns the completeness points written."""
        started = time.monotonic()
        with self._lock:
            # the hour after a touched one too: its first gap starts from this one's last seq
            original = set(self._dirty)
            touched = original | {(st, h + HOUR_MS) for st, h in original}
            dirty = sorted(touched, key=lambda k: (k[1], k[0]))
            self._dirty.clear()
            seen, self._seen = self._seen, {}
            for key, hour in list(self._hours.items()):
                if key not in dirty and started - hour.touched > FORGET_AFTER_S:
                    del self._hours[key]
        try:
            for key in dirty:
                self._load(db, key)
            lines = self._arrival_lines(dirty) + self._seen_lines(seen)
            if lines:
                write(lines)
            written = 0
            for stream, hour_ms in dirty:
                points = self._compute(db, stream, hour_ms)
                if points:
                    write(points)
                    written += len(points)
        except Exception:
            with self._lock:  # tried again at the next pass
                self._dirty.update(original)
                for k, v in seen.items():
                    self._seen.setdefault(k, v)
            raise
        self.passes += 1
        self.pass_seconds = time.monotonic() - started
        return written

    def _load(self, db: InfluxQL, key: tuple[str, int]) -> None:
        with self._lock:
            hour = self._hours.get(key)
            if hour is None or hour.loaded:
                return
        stream, hour_ms = key
        rows = db.series(
            'SELECT last("received"), last("late"), last("backwards") FROM "ingest_arrivals" '
            f"WHERE bridge = {quote(self.bridge)} AND stream = {quote(stream)} "
            f"AND time >= {hour_ms}ms AND time <= {hour_ms}ms GROUP BY site, device"
        )
        with self._lock:
            for row in rows:
                tags, values = row.get("tags", {}), row["values"][0]
                c = hour.counts.setdefault((tags["site"], tags["device"]), [0, 0, 0])
                for i in range(3):
                    c[i] += int(values[i + 1] or 0)
            hour.loaded = True

    def _arrival_lines(self, dirty: list[tuple[str, int]]) -> list[str]:
        lines = []
        bridge = _tag(self.bridge)
        with self._lock:
            for stream, hour_ms in dirty:
                hour = self._hours.get((stream, hour_ms))
                if hour is None:
                    continue
                for (site, device), (received, late, back) in hour.counts.items():
                    lines.append(
                        f"ingest_arrivals,site={_tag(site)},device={_tag(device)},"
                        f"stream={stream},bridge={bridge} received={received}i,late={late}i,"
                        f"backwards={back}i {hour_ms}"
                    )
        return lines

    def _seen_lines(self, seen: dict[tuple[str, str], tuple[int, int, int]]) -> list[str]:
        now = int(time.time() * 1000)
        return [
            f"last_seen,site={_tag(site)},device={_tag(device)} ts={ms}i,seq={seq}i,"
            f"lag_s={(arrival - ms) / 1000.0!r} {now}"
            for (site, device), (ms, seq, arrival) in seen.items()
        ]

    def _compute(self, db: InfluxQL, stream: str, hour_ms: int) -> list[str]:
        end = hour_ms + HOUR_MS
        span = f"time >= {hour_ms}ms AND time < {end}ms"
        stats = {
            _key(row): row["values"][0]
            for row in db.series(
                f'SELECT count("seq"), min("seq"), max("seq") FROM "{stream}" WHERE {span} '
                "GROUP BY site, device"
            )
        }
        before = {
            _key(row): row["values"][0][1]
            for row in db.series(
                'SELECT last("last_seq") FROM "completeness" WHERE stream = '
                f"{quote(stream)} AND time >= {hour_ms - LOOKBACK_MS}ms AND time < {hour_ms}ms "
                "GROUP BY site, device"
            )
        }
        arrivals = {
            _key(row): row["values"][0]
            for row in db.series(
                'SELECT sum("received"), sum("late") FROM "ingest_arrivals" WHERE stream = '
                f"{quote(stream)} AND time >= {hour_ms}ms AND time <= {hour_ms}ms "
                "GROUP BY site, device"
            )
        }
        lines = []
        results: dict[tuple[str, str], Seqs] = {}
        suspects: dict[tuple[str, str], int | None] = {}  # device → last seq before the hour
        for (site, device), (_, count, low, high) in stats.items():
            prev = before.get((site, device))
            if prev is not None and prev >= low:
                prev = None  # a reset, or numbering that went back: a new run
            if count == high - low + 1 and (prev is None or prev + 1 == low):
                results[(site, device)] = Seqs(count, count, (), 0, 0, low, high)
            else:
                suspects[(site, device)] = prev
        # the seq values of the devices that are not complete, DETAIL_CHUNK devices a query:
        # a broker outage that leaves every device with a gap costs hundreds of queries, not
        # one per device
        keys = list(suspects)
        for i in range(0, len(keys), DETAIL_CHUNK):
            chunk = keys[i : i + DETAIL_CHUNK]
            which = " OR ".join(f"(site = {quote(a)} AND device = {quote(b)})" for a, b in chunk)
            found: dict[tuple[str, str], list[int]] = {k: [] for k in chunk}
            for row in db.series(
                f'SELECT "seq" FROM "{stream}" WHERE ({which}) AND {span} GROUP BY site, device'
            ):
                values = found.setdefault(_key(row), [])
                values += [int(v[1]) for v in row["values"] if v[1] is not None]
            for key in chunk:
                results[key] = find_gaps(found[key], suspects[key])
        for (site, device), result in results.items():
            received, late = arrivals.get((site, device), (None, 0, 0))[1:]
            duplicates = max(0, int(received or 0) - result.received)
            ratio = result.received / result.expected if result.expected else 1.0
            lines.append(
                f"completeness,site={_tag(site)},device={_tag(device)},stream={stream} "
                f"received={result.received}i,expected={result.expected}i,"
                f"missing={result.missing}i,ratio={ratio!r},gap_count={len(result.gaps)}i,"
                f'gaps="{format_gaps(result.gaps)}",duplicates={duplicates}i,'
                f"late={int(late or 0)}i,resets={result.resets}i,"
                f"first_seq={result.first}i,last_seq={result.last}i {hour_ms}"
            )
        return lines


def _key(row: dict[str, Any]) -> tuple[str, str]:
    tags = row.get("tags", {})
    return tags.get("site", ""), tags.get("device", "")
