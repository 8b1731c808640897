"""The baseline for bench/pipeline: a bare pymodbus + paho-mqtt loop doing the same reads.

It polls every meter once per second with the same planned requests as the agent, decodes
each request's floats with one ``struct.unpack`` (what a competent engineer writes, not
``convert_from_registers`` per value: issue 18), and publishes one JSON message per poll at
``--qos`` 1 (the agent's guarantee) or 0. It keeps no state and checks nothing: no config
validation, no quality flags, no sequence numbers, no reconnects. The meters are unit ids
1..k of simulated Modbus/TCP gateways: one pymodbus client (one connection) per gateway,
shared by the loops of its meters.

    python -m bench.baseline_loop --mqtt-port P --gateways 5020:100,5021:100 \
        --profile bench-meter.yaml [--qos 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import struct
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus.client import AsyncModbusTcpClient

from vatio.drivers.modbus.planner import plan_reads
from vatio.drivers.modbus.profile import RegisterType, load_profile


async def meter_loop(
    client: AsyncModbusTcpClient,
    unit: int,
    topic: str,
    plan,
    pub: mqtt.Client,
    stats: dict[str, int],
    qos: int,
) -> None:
    # per request: one struct format over all its registers, and where each point's float is
    layouts = [
        (
            struct.Struct(f">{req.count}H"),
            struct.Struct(f">{req.count // 2}f")
            if req.count % 2 == 0 and all((p.address - req.start) % 2 == 0 for p in req.points)
            else None,
            [(p.quantity, (p.address - req.start)) for p in req.points],
        )
        for req in plan
    ]
    tick = math.floor(time.time()) + 1.0
    while True:
        await asyncio.sleep(max(tick - time.time(), 0))
        values = {}
        for req, layout in zip(plan, layouts, strict=True):
            read = (
                client.read_input_registers
                if req.register_type is RegisterType.INPUT
                else client.read_holding_registers
            )
            rr = await read(req.start, count=req.count, device_id=unit)
            words, floats, where = layout
            raw = words.pack(*rr.registers)
            if floats is not None:  # every float of the request in one unpack
                decoded = floats.unpack(raw)
                for quantity, off in where:
                    values[quantity] = decoded[off // 2]
            else:
                for quantity, off in where:
                    values[quantity] = struct.unpack_from(">f", raw, off * 2)[0]
        pub.publish(topic, json.dumps({"ts": time.time(), "values": values}), qos=qos)
        stats["polls"] += 1
        now = time.time()
        tick += 1.0
        if now >= tick:
            missed = math.floor(now - tick) + 1
            stats["missed_ticks"] += missed
            tick += missed


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mqtt-port", type=int, required=True)
    ap.add_argument("--gateways", required=True, help="port:meters,port:meters,...")
    ap.add_argument("--profile", default="eastron_sdm630")
    ap.add_argument("--qos", type=int, choices=[0, 1], default=1)
    args = ap.parse_args()
    profile = load_profile(args.profile)
    plan = plan_reads(profile.points, profile.limits)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-baseline")
    pub.max_inflight_messages_set(100)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", args.mqtt_port)
    pub.loop_start()
    stats = {"polls": 0, "missed_ticks": 0}
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(
        signal.SIGUSR1, lambda: print(f"stats: {json.dumps(stats)}", flush=True)
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks = []
    for gateway in args.gateways.split(","):
        port, meters = (int(x) for x in gateway.split(":"))
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
        await client.connect()
        for unit in range(1, meters + 1):
            topic = f"bench/meter-{port}-{unit}/telemetry"
            tasks.append(
                asyncio.create_task(meter_loop(client, unit, topic, plan, pub, stats, args.qos))
            )
    await stop.wait()
    for t in tasks:
        t.cancel()
    pub.loop_stop()


if __name__ == "__main__":
    asyncio.run(main())
