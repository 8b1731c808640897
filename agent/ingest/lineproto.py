"""One Vatio MQTT message → one InfluxDB line-protocol point (DESIGN.md, "External contracts").

measurement = stream (``telemetry``, ``metrics``, ``events``); tags ``site`` and ``device``
from the topic, ``agent`` when the payload names one; fields = ``values`` (always floats, so a
value that happens to be whole never changes a field's type) plus ``seq`` as an integer;
timestamp = ``ts`` in milliseconds. A status makes no point here: the bridge writes
statuses as fleet history with agent/ingest/statuspoints.py (``fleet.statuses``).

Tags come from the topic, not the payload: the broker's ACL decides who may publish under a
site's topics, so a payload that claims another site is refused rather than trusted.

Everything is checked before it is written: VictoriaMetrics answers 204 to a malformed line
and silently drops it (stack-notes §4.2), so a bad message must be caught here and sent to
the dead-letter topic instead. :func:`to_line` raises nothing but :class:`BadMessage`, whose
``kind`` is one of a fixed set (:data:`KINDS`), so dead letters can be counted by reason
without one counter per hostile name.

**Limits** (:class:`Limits`, configurable in the bridge's ``limits:``) are checked cheaply
and in order: payload size first, then JSON nesting depth on the raw bytes *before*
``json.loads`` (a payload nested 100,000 deep never costs a deep recursion), then the number
of values, then each name.

**Names are stored exactly as sent, or refused.** Measured on 2026-12-01 against Debian's
InfluxDB 1.6.7 (``/write``) and VictoriaMetrics 1.79.5 (``/api/v2/write``), writing each
character at the start, middle and end of a tag value and of a field key (with ``,``, ``=``
and space escaped by a backslash, nothing else escaped), then reading it back
(``SHOW TAG VALUES``/``SHOW FIELD KEYS``; VictoriaMetrics' label values and metric names):

- every code point from U+0020 to U+10FFFF but the backslash, DEL and the C1 controls (all of
  the BMP, and samples of planes 1 and 14: 65,601 names per position) comes back unchanged
  from both, at every position, one name per line: spaces, commas, equals signs, accents,
  CJK, combining marks, emoji, U+00A0, U+2028, U+FEFF;
- a **double quote** is safe in a tag, but not in a field key once another ``"`` follows on
  the line: VictoriaMetrics then reads a string from the first quote (``a"b=1,c"d=2`` becomes
  one sample ``a"b`` = 0; with a string field after it the whole line is dropped, silently);
- a **backslash** cannot be written so both read it back: InfluxDB 1.6 keeps ``\\\\`` as two
  backslashes where VictoriaMetrics reads one; a name *ending* in a backslash escapes the
  separator after it (InfluxDB: HTTP 400; VictoriaMetrics: the line silently dropped);
- a **newline** ends the line: HTTP 400 / silently dropped, in a tag, a field key or (for
  VictoriaMetrics) even inside a quoted string field;
- control characters, tried one by one: InfluxDB 1.6 drops a leading tab or NUL from a field
  key; the others (DEL and U+0085 included) survive, but no real name has one and no tool
  shows them;
- a lone surrogate (JSON ``"\\ud800"``, or CESU bytes that ``json.loads`` of bytes lets in)
  cannot be encoded as UTF-8: the write itself would fail;
- the field key ``time`` is accepted by InfluxDB 1.6 (204) and silently not stored; a field
  key twice in one line keeps the last value in InfluxDB and the first in VictoriaMetrics;
  ``seq`` as a value name clashes with the integer ``seq`` field (HTTP 400, type conflict);
- a tag value or field key of 17,000 characters is stored by both; 70,000 is refused by
  InfluxDB 1.6 (HTTP 400);
- string fields (an event's ``event`` and ``message``): InfluxDB 1.6 stores every character
  (``\\`` and ``"`` escaped), a literal newline included; VictoriaMetrics stores a string field
  as the number 0: the text never reaches it (only ``seq`` of an event is useful there);
- timestamps: InfluxDB 1.6 takes 1677-09-21…2262-04-11 (ns in an int64, else HTTP 400);
  VictoriaMetrics stores timestamp 0 as *now*, silently drops negative ones and anything more
  than ~2 days ahead of its clock; integers beyond int64 are HTTP 400 in InfluxDB and silently
  dropped by VictoriaMetrics.

Hence the rules: a name (site, device, agent, value name) is 1…``max_name_length``
characters, with no control character (U+0000–U+001F, U+007F–U+009F), no backslash, no double
quote (refused in tags too, where it is safe, so that one rule covers every name) and no lone
surrogate, and matches ``name_pattern`` when one is configured; a value name is also not
``time`` or ``seq`` and does not start with ``_`` (InfluxDB 2.x/3.x reserve that prefix:
documented there, not measurable here). Event text may hold anything but a newline or a lone
surrogate. ``ts`` lies in 1970-01-01T00:00:00.001Z…2262-04-11T23:47:16.854Z; ``seq`` is an
int64.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime

TOPIC_PREFIX = "vatio/v1/"
NUMERIC_STREAMS = ("telemetry", "metrics")

# Reason kinds: the label of vatio_ingest_dead_letters_total and the dead letter's "kind".
# A fixed set, so hostile input cannot grow the counters (or the log) without bound.
KINDS = (
    "topic",  # not vatio/v1/<site>/<device>/<stream>, or an unknown stream
    "too_large",  # payload over limits.max_payload_bytes
    "too_deep",  # JSON nested deeper than limits.max_depth
    "not_json",  # not UTF-8 JSON, or not one object
    "site_mismatch",  # the payload names another site or device than its topic
    "ts",  # missing, unreadable, or outside what the databases store
    "seq",  # not an int64
    "value",  # a value that is not a finite number a float can hold
    "too_many_values",  # more than limits.max_values
    "name",  # a name the databases would not store as sent
    "text",  # an event's text the databases would not store as sent
    "no_values",  # nothing to write
    "contract",  # anything else the contract rules out
)

# Beyond these, InfluxDB 1.6 answers 400 and VictoriaMetrics drops the point silently (the
# module docstring); VictoriaMetrics also takes 0 for "now".
MIN_MS = 1
MAX_MS = 9_223_372_036_854  # 2262-04-11T23:47:16.854Z: int64 nanoseconds
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Control characters (C0, DEL, C1), the backslash, the double quote, lone surrogates: see the
# module docstring.
_FORBIDDEN_IN_NAME = re.compile('[\x00-\x1f\x7f-\x9f"\\\\\ud800-\udfff]')
_FORBIDDEN_IN_TEXT = re.compile("[\n\ud800-\udfff]")
_RESERVED_FIELDS = frozenset({"time", "seq"})
# A JSON string (skipped whole) or a bracket: enough to measure nesting without parsing.
_STRUCTURE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPEN = frozenset(b"[{")


class BadMessage(ValueError):
    """The message breaks the contract; the text says how, ``kind`` says which rule."""

    def __init__(self, reason: str, kind: str = "contract") -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Limits:
    """What one message may hold. The defaults are far above any message Vatio sends (see
    agent/ingest/config.py for why each is what it is) and far below what would hurt."""

    max_payload_bytes: int = 65_536
    max_depth: int = 16
    max_values: int = 1_000
    max_name_length: int = 256
    name_pattern: str | None = None  # a regex every name must match (fullmatch), if set


def show(text: str, limit: int = 60) -> str:
    """A name as a reason quotes it: escaped (a newline shows as ``\\n``), and cut short."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"


def _describe(char: str) -> str:
    if char == "\\":
        return "a backslash"
    if char == '"':
        return "a double quote"
    if "\ud800" <= char <= "\udfff":
        return f"a lone surrogate (U+{ord(char):04X}, not UTF-8)"
    if char == "\n":
        return "a newline"
    return f"a control character (U+{ord(char):04X})"


def too_deep(payload: bytes | bytearray, limit: int) -> bool:
    """Whether JSON ``payload`` nests deeper than ``limit``, without parsing it.

    Counting brackets is an upper bound on the depth and costs two C scans: real messages
    (depth 2, a handful of brackets) stop there. Only a payload with more brackets than the
    limit is walked, bracket by bracket, skipping strings whole."""
    if payload.count(b"{") + payload.count(b"[") <= limit:
        return False
    depth = 0
    for match in _STRUCTURE.finditer(payload):
        first = payload[match.start()]
        if first in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif first != 0x22:  # a closing bracket (0x22 is the quote of a string)
            depth -= 1
    return False


class Converter:
    """:meth:`to_line` under one set of :class:`Limits`. Names already checked are cached
    (the same few sites, devices and quantities come again and again)."""

    CACHE_SIZE = 8192

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._pattern = re.compile(self.limits.name_pattern) if self.limits.name_pattern else None
        self._tags: dict[str, str] = {}
        self._fields: dict[str, str] = {}
        # when a list: (stream, site, device, seq, ts ms) of each converted message with a
        # seq, for the bridge's completeness tracking (agent/ingest/completeness.py)
        self.observed: list[tuple[str, str, str, int, int]] | None = None

    def _check_name(self, text: str, what: str) -> str:
        """``text`` escaped for a tag value or a field key, or :class:`BadMessage`."""
        if not text:
            raise BadMessage(f"{what} is empty", "name")
        limit = self.limits.max_name_length
        if len(text) > limit:
            raise BadMessage(
                f"{what} {show(text)} is {len(text)} characters long (limit {limit})", "name"
            )
        bad = _FORBIDDEN_IN_NAME.search(text)
        if bad:
            raise BadMessage(
                f"{what} {show(text)} has {_describe(bad.group())} at position {bad.start()}: "
                "the databases would not store it as sent",
                "name",
            )
        if self._pattern is not None and not self._pattern.fullmatch(text):
            raise BadMessage(
                f"{what} {show(text)} does not match limits.name_pattern "
                f"{self.limits.name_pattern!r}",
                "name",
            )
        return text.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")

    def tag(self, text: str, what: str) -> str:
        escaped = self._tags.get(text)
        if escaped is None:
            escaped = self._check_name(text, what)
            if len(self._tags) >= self.CACHE_SIZE:
                self._tags.clear()
            self._tags[text] = escaped
        return escaped

    def field(self, text: str) -> str:
        escaped = self._fields.get(text)
        if escaped is None:
            escaped = self._check_name(text, "value name")
            if text in _RESERVED_FIELDS or text.startswith("_"):
                raise BadMessage(
                    f"value name {show(text)} is reserved ('time' and names starting with '_' "
                    "belong to InfluxDB, 'seq' to the message)",
                    "name",
                )
            if len(self._fields) >= self.CACHE_SIZE:
                self._fields.clear()
            self._fields[text] = escaped
        return escaped

    def to_line(self, topic: str, payload: bytes | bytearray) -> str | None:
        """The point for one message, or ``None`` for a status; :class:`BadMessage`
        otherwise, and never any other exception."""
        if not topic.startswith(TOPIC_PREFIX):
            raise BadMessage(f"topic {show(topic)} is not under {TOPIC_PREFIX}", "topic")
        parts = topic[len(TOPIC_PREFIX) :].split("/")
        if len(parts) != 3:
            raise BadMessage(
                f"topic {show(topic)} is not {TOPIC_PREFIX}<site>/<device>/<stream>", "topic"
            )
        site, device, stream = parts
        if stream == "status":
            return None
        if stream not in NUMERIC_STREAMS and stream != "events":
            raise BadMessage(
                f"unknown stream {show(stream)} (telemetry, metrics, status, events)", "topic"
            )
        limits = self.limits
        if len(payload) > limits.max_payload_bytes:
            raise BadMessage(
                f"payload is {len(payload)} bytes (limit {limits.max_payload_bytes})",
                "too_large",
            )
        if too_deep(payload, limits.max_depth):
            raise BadMessage(f"JSON nested deeper than {limits.max_depth} levels", "too_deep")
        try:
            # UTF-8 strictly: json.loads(bytes) would also take UTF-16/32, and CESU surrogates
            body = json.loads(payload.decode())
        except UnicodeDecodeError as exc:
            raise BadMessage(f"payload is not UTF-8: {exc.reason} at byte {exc.start}",
                             "not_json") from None  # fmt: skip
        except (ValueError, RecursionError) as exc:
            raise BadMessage(f"payload is not JSON: {str(exc)[:100]}", "not_json") from None
        if not isinstance(body, dict):
            raise BadMessage("payload is not a JSON object", "not_json")
        claimed_site, claimed_device = body.get("site", site), body.get("device", device)
        if claimed_site != site or claimed_device != device:
            raise BadMessage(
                f"payload names site {_show_any(claimed_site)} / device "
                f"{_show_any(claimed_device)}, the topic {show(site)} / {show(device)}",
                "site_mismatch",
            )
        ms = timestamp_ms(body.get("ts"))
        tags = f"{stream},site={self.tag(site, 'site')},device={self.tag(device, 'device')}"
        agent = body.get("agent")
        if agent is not None:
            if not isinstance(agent, str):
                raise BadMessage("'agent' is not a string", "name")
            tags += f",agent={self.tag(agent, 'agent')}"
        fields = []
        seq = body.get("seq")
        if seq is not None:
            if type(seq) is not int or not INT64_MIN <= seq <= INT64_MAX:
                raise BadMessage(f"'seq' {_show_any(seq)} is not a 64-bit integer", "seq")
            fields.append(f"seq={seq}i")
        if stream == "events":
            for key in ("event", "message"):
                value = body.get(key)
                if value is None:
                    continue
                if not isinstance(value, str):
                    raise BadMessage(f"'{key}' is not a string", "text")
                bad = _FORBIDDEN_IN_TEXT.search(value)
                if bad:
                    raise BadMessage(
                        f"'{key}' has {_describe(bad.group())} at position {bad.start()}: "
                        "line protocol cannot carry it",
                        "text",
                    )
                text = value.replace("\\", "\\\\").replace('"', '\\"')
                fields.append(f'{key}="{text}"')
        else:
            values = body.get("values")
            if not isinstance(values, dict):
                raise BadMessage("'values' is missing or not an object", "value")
            if len(values) > limits.max_values:
                raise BadMessage(
                    f"{len(values)} values (limit {limits.max_values})", "too_many_values"
                )
            for name, value in values.items():
                key = self.field(name)
                if value is None:
                    continue  # not read this time; the reason is under "quality"
                if type(value) is float:
                    number = value
                elif type(value) is int:
                    try:
                        number = float(value)
                    except OverflowError:
                        raise BadMessage(
                            f"value {show(name)} is {_show_any(value)}, too large for a float",
                            "value",
                        ) from None
                else:
                    raise BadMessage(
                        f"value {show(name)} is {_show_any(value)}, not a number", "value"
                    )
                if not math.isfinite(number):
                    raise BadMessage(
                        f"value {show(name)} is {value!r}, not a finite number", "value"
                    )
                fields.append(f"{key}={number!r}")
        if not fields:
            raise BadMessage("no values to write", "no_values")
        if self.observed is not None and type(seq) is int:
            self.observed.append((stream, site, device, seq, ms))
        return f"{tags} {','.join(fields)} {ms}"


def _show_any(value: object) -> str:
    """Any JSON value, quoted for a reason and cut short (a 400-digit number included)."""
    if isinstance(value, str):
        return show(value)
    if type(value) is int and not -(10**30) < value < 10**30:
        # str() of a huge int is slow, and refused beyond 4300 digits: estimate from the bits
        return f"an integer of about {int(abs(value).bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:60]}… ({type(value).__name__})"


def timestamp_ms(ts: object) -> int:
    if not isinstance(ts, str):
        raise BadMessage("'ts' is missing or not a string", "ts")
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        raise BadMessage(f"'ts' {show(ts, 40)} is not an RFC 3339 time", "ts") from None
    if when.tzinfo is None:
        raise BadMessage(
            f"'ts' {show(ts, 40)} has no time zone (write it in UTC, ending in Z)", "ts"
        )
    try:
        ms = round(when.timestamp() * 1000)
    except (OverflowError, ValueError):  # year 1 in a zone east of UTC, e.g.
        ms = 0
    if not MIN_MS <= ms <= MAX_MS:
        raise BadMessage(
            f"'ts' {show(ts, 40)} is outside 1970-01-01T00:00:00.001Z…2262-04-11 "
            "(what the databases store)",
            "ts",
        )
    return ms


_default = Converter()


def to_line(topic: str, payload: bytes | bytearray) -> str | None:
    """The point for one message under the default :class:`Limits` (the agent's direct
    output); :class:`BadMessage` otherwise."""
    return _default.to_line(topic, payload)
