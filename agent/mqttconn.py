"""One MQTT connection with paho-mqtt 2, for asyncio code: TLS, credentials, MQTT 5 or 3.1.1,
persistent sessions, a last will, and errors turned into sentences a technician can act on.

paho runs its network loop on its own thread (``loop_start``), which publishes 3–4× faster
than aiomqtt's one-future-per-message path (stack-notes §3.2): the spool's backlog of an hour
must drain in two minutes. Callbacks arrive on that thread; :class:`Connection` hands them
to the event loop. A connection that drops is thrown away (``reconnect`` is the caller's
loop, with backoff), so nothing paho kept in flight is resent behind the caller's back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from vatio.agent.config import MqttConnectionConfig
from vatio.agent.messages import Message

log = logging.getLogger(__name__)


class ConnectError(Exception):
    """Could not connect; the message names the broker and what to check."""


def tls_context(cfg: MqttConnectionConfig) -> ssl.SSLContext:
    tls = cfg.tls
    try:
        ctx = ssl.create_default_context(cafile=tls.ca_file if tls else None)
        if tls and tls.cert_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectError(
            f"TLS files for {cfg.where}: {exc}: check outputs.mqtt.tls "
            "(ca_file, cert_file, key_file: PEM files the agent's user can read)"
        ) from None
    if tls and not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _connack_hint(code: ReasonCode | int) -> str:
    text = str(code).lower()
    if "password" in text or "not authori" in text or "bad user" in text:
        return "check username and password (and that the broker knows this client)"
    if "identifier" in text:
        return "the broker refuses this client_id: set a unique client_id"
    if "protocol" in text:
        return "the broker does not speak this MQTT version: set protocol: '3.1.1'"
    return "see the broker's log"


class Connection:
    """A connected paho client; ``lost`` is set when it drops."""

    def __init__(
        self,
        cfg: MqttConnectionConfig,
        client_id: str,
        will: Message | None = None,
        manual_ack: bool = False,
    ) -> None:
        self.cfg = cfg
        self.loop = asyncio.get_running_loop()
        self.lost = asyncio.Event()
        self.lost_reason = ""
        self._connack: asyncio.Future[ReasonCode | int] = self.loop.create_future()
        v5 = cfg.protocol == "5"
        self.v5 = v5
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if v5 else not cfg.persistent_session,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False,
            manual_ack=manual_ack,
        )
        if cfg.username is not None:
            password = cfg.password.get_secret_value() if cfg.password else None
            self.client.username_pw_set(cfg.username, password)
        if cfg.uses_tls:
            self.client.tls_set_context(tls_context(cfg))
        if will is not None:
            self.client.will_set(will.topic, will.payload, qos=1, retain=will.retain)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = None
        self.client.on_message = None

    # paho thread → event loop
    def _on_connect(self, client: Any, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        self.loop.call_soon_threadsafe(self._set_connack, code)

    def _set_connack(self, code: ReasonCode | int) -> None:
        if not self._connack.done():
            self._connack.set_result(code)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        self.loop.call_soon_threadsafe(self._set_lost, str(code))

    def _set_lost(self, reason: str) -> None:
        self.lost_reason = reason
        self.lost.set()
        self._set_connack(-1)

    async def open(self, timeout: float = 10.0) -> None:
        """Connect and wait for the broker's CONNACK; raises :class:`ConnectError`."""
        cfg = self.cfg
        props = None
        if self.v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = int(cfg.session_expiry) if cfg.persistent_session else 0
            if cfg.receive_maximum:
                props.ReceiveMaximum = cfg.receive_maximum
        try:
            await asyncio.wait_for(
                asyncio.to_thread(
                    self.client.connect,
                    cfg.host,
                    cfg.port,
                    cfg.keepalive,
                    clean_start=not cfg.persistent_session if self.v5 else 3,
                    properties=props,
                ),
                timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise ConnectError(
                f"the certificate of {cfg.where} does not verify ({exc.verify_message}): set "
                "tls.ca_file to the CA that signed it (or fix the broker's certificate)"
            ) from None
        except ssl.SSLError as exc:
            raise ConnectError(f"TLS with {cfg.where} failed: {exc.reason or exc}") from None
        except ConnectionRefusedError:
            raise ConnectError(
                f"nothing accepts connections at {cfg.where}: is the broker running there?"
            ) from None
        except TimeoutError:
            raise ConnectError(f"{cfg.where} did not answer within {timeout:g} s") from None
        except OSError as exc:
            raise ConnectError(f"cannot reach {cfg.where}: {exc.strerror or exc}") from None
        self.client.loop_start()
        try:
            code = await asyncio.wait_for(asyncio.shield(self._connack), timeout)
        except TimeoutError:
            await self.close()
            raise ConnectError(f"{cfg.where} accepted the connection but sent no CONNACK") from None
        failed = code == -1 or (code.is_failure if isinstance(code, ReasonCode) else code != 0)
        if failed:
            await self.close()
            reason = self.lost_reason if code == -1 else str(code)
            raise ConnectError(
                f"{cfg.where} refused the connection: {reason}: {_connack_hint(code)}"
            )

    async def close(self) -> None:
        """Disconnect (no will is sent) and stop paho's thread."""
        with contextlib.suppress(Exception):  # already gone: nothing to tell the broker
            self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    def on_thread(self, fn: Callable[..., None]) -> Callable[..., None]:
        """Wrap ``fn`` so a paho callback runs it on the event loop."""

        def relay(*args: Any) -> None:
            self.loop.call_soon_threadsafe(fn, *args)

        return relay

    def on_thread_batched(
        self, fn: Callable[[list[tuple[Any, ...]]], None], hop_at: int = 1
    ) -> BatchedRelay:
        """Like :meth:`on_thread`, for callbacks that come in floods (PUBACKs): see
        :class:`BatchedRelay`."""
        return BatchedRelay(self.loop, fn, hop_at)


class BatchedRelay:
    """A paho callback whose calls reach ``fn`` on the event loop as lists, in order.

    One thread hop (``call_soon_threadsafe``: a pipe write and a wake-up) cost more CPU than
    the acknowledgement it carried (issue 18). So the calls wait in a list: the network
    thread hops only once ``hop_at`` of them wait, and the loop takes the rest when it calls
    :meth:`flush` (the MQTT output does before each spool commit).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[[list[tuple[Any, ...]]], None],
        hop_at: int = 1,
    ) -> None:
        self.loop = loop
        self.fn = fn
        self.hop_at = max(1, hop_at)
        self.hops = 0
        self._waiting: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._hopping = False

    def __call__(self, *args: Any) -> None:  # paho's network thread
        with self._lock:
            self._waiting.append(args)
            if self._hopping or len(self._waiting) < self.hop_at:
                return  # a flush is on its way, or the loop's next flush takes it
            self._hopping = True
        self.hops += 1
        self.loop.call_soon_threadsafe(self.flush)

    def flush(self) -> None:
        """Hand what is waiting to ``fn`` now (on the event loop)."""
        with self._lock:
            batch, self._waiting = self._waiting, []
            self._hopping = False
        if batch:
            self.fn(batch)


async def open_retrying(
    make: Callable[[], Connection],
    first_delay: float,
    max_delay: float,
    on_error: Callable[[ConnectError, float], None],
) -> Connection:
    """A fresh :class:`Connection` from ``make`` until one opens, waiting ``first_delay``,
    then twice as long each time up to ``max_delay``; ``on_error(exc, delay)`` says why."""
    delay = first_delay
    while True:
        conn = make()
        try:
            await conn.open()
            return conn
        except ConnectError as exc:
            on_error(exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
