"""bench/demand_alarm: how early the projected demand alarm comes, against two baselines.

    python -m bench.demand_alarm [--days 5] [--every 1] [--limit 55]

Plays the simulator's factory load (:class:`vatio.simulators.load_curve.FactoryLoad`, 60 kW
rated, motor starts, and large machines starting at random in the shifts) for whole weekdays
at a fast clock (no sleeping: timestamps advance by ``--every`` seconds), one meter per day
with its own seed, through :class:`vatio.agent.metrics.engine.MetricsEngine` as the agent
would feed it (counter and power readings), with ``demand_limit_kw`` set. For every block
whose final average exceeded the limit it prints how many minutes before the block's end
each alarm came (min / median / max), the false alarms (an alarm in a block that ended at or
below the limit) and the missed blocks, for

* **projected**: the engine's ``demand_projected_high`` (the rule in
  :mod:`vatio.agent.metrics.demand_alarm`);
* **at close**: ``demand_high``, when the block closes above the limit (Vatio before the
  projection): it never comes before the end, so its lead time is 0 at best;
* **power > limit**: the naive alarm on the instantaneous ``active_power_w``, the first
  reading of a block above the limit.

Then the same projection with other settings (the minimum measured time before projecting,
and P_now as the instantaneous reading instead of the 60-second mean), fed the same block
energy, which is how :data:`~vatio.agent.metrics.demand_alarm.MIN_ELAPSED_S` and
:data:`~vatio.agent.metrics.demand_alarm.POWER_WINDOW_S` were chosen.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from vatio.agent.config import DeviceMetricsConfig, MetricsConfig
from vatio.agent.metrics.demand_alarm import MIN_ELAPSED_S, DemandAlarm, RecentPower
from vatio.agent.metrics.engine import MetricsEngine
from vatio.drivers.reading import PollResult
from vatio.simulators.load_curve import FactoryLoad, MeterState

TZ = ZoneInfo("America/Mexico_City")
# what an energy meter reads (the load curve also serves CO2 for Modbus air sensors)
METER_READS = {"energy_import_kwh", "active_power_w", "reactive_energy_import_kvarh"}
FIRST_DAY = dt.date(2026, 11, 24)  # a Tuesday; days after it skip weekends
VARIANTS = [  # (label, min elapsed s, power window s, ok below this share of the limit,
    # an ok re-arms the block); power window 0: the reading's own power
    ("instant P, from 0 s", 0.0, 0.0, 0.95, True),
    ("instant P, after 120 s", 120.0, 0.0, 0.95, True),
    ("60 s mean P, from 0 s", 0.0, 60.0, 0.95, True),
    ("60 s mean P, after 60 s", 60.0, 60.0, 0.95, True),
    ("60 s mean P, after 120 s", 120.0, 60.0, 0.95, True),
    ("60 s mean P, after 180 s", 180.0, 60.0, 0.95, True),
    ("60 s mean P, after 300 s", 300.0, 60.0, 0.95, True),
    ("after 120 s, ok < 100 %", 120.0, 60.0, 1.0, True),
    ("after 120 s, ok < 98 %", 120.0, 60.0, 0.98, True),
    ("after 120 s, ok < 90 %", 120.0, 60.0, 0.90, True),
    ("after 120 s, 1 high/block", 120.0, 60.0, 0.95, False),
]


@dataclass
class Score:
    """Alarms per block: block start → seconds before its end the first alarm came."""

    first: dict[float, float] = field(default_factory=dict)
    oks: list[float] = field(default_factory=list)  # blocks an ok came in
    highs: int = 0  # high events (at most one per block and crossing)
    events: list[tuple[float, bool]] = field(default_factory=list)  # (block, high), in order

    def event(self, block: float, now: float, high: bool) -> None:
        if high:
            self.highs += 1
            self.alarm(block, now)
        else:
            self.oks.append(block)
        self.events.append((block, high))

    def blind(self, blocks: dict[float, float], limit: float) -> int:
        """Blocks that ended above the limit with the alarm off (an ok, and no high after)."""
        on, i, n = False, 0, 0
        for b in sorted(blocks):
            while i < len(self.events) and self.events[i][0] <= b:
                on, i = self.events[i][1], i + 1
            n += blocks[b] > limit and b in self.first and not on
        return n

    def alarm(self, block: float, now: float) -> None:
        self.first.setdefault(block, block + 900 - now)

    def premature(self, blocks: dict[float, float], limit: float) -> int:
        """oks in a block that still ended above the limit (a load put back too soon)."""
        return sum(1 for b in self.oks if blocks.get(b, 0.0) > limit)

    def summary(self, blocks: dict[float, float], limit: float) -> str:
        high = [b for b, kw in blocks.items() if kw > limit]
        leads = sorted(self.first[b] / 60 for b in high if b in self.first)
        false = sum(1 for b in self.first if b in blocks and blocks[b] <= limit)
        missed = len(high) - len(leads)
        if leads:
            lead = f"{leads[0]:5.1f} {statistics.median(leads):6.1f} {leads[-1]:5.1f}"
        else:
            lead = f"{'—':>5} {'—':>6} {'—':>5}"
        if self.events:
            early, blind = self.premature(blocks, limit), self.blind(blocks, limit)
            oks = f"{self.highs:>5} {len(self.oks):>4} {early:>9} {blind:>5}"
        else:  # the baselines: one alarm per block, and no ok
            oks = f"{len(self.first):>5} {'—':>4} {'—':>9} {'—':>5}"
        return f"{lead}   {false:>5}  {missed:>6}  {oks}"


def weekdays(n: int) -> list[dt.date]:
    out, day = [], FIRST_DAY
    while len(out) < n:
        if day.weekday() < 5:
            out.append(day)
        day += dt.timedelta(days=1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=int, default=5, help="weekdays to play, one seed each")
    ap.add_argument("--every", type=float, default=1.0, help="seconds between readings")
    ap.add_argument("--limit", type=float, default=60.0, help="demand limit, kW")
    ap.add_argument("--machines", type=float, default=0.15, help="machine starts per slot")
    args = ap.parse_args()
    limit = args.limit
    blocks: dict[float, float] = {}  # (day-offset) block start → final average kW
    projected, at_close, naive = Score(), Score(), Score()
    variants = {v[0]: Score() for v in VARIANTS}
    readings = 0
    started = time.process_time()
    for seed, day in enumerate(weekdays(args.days), start=1):
        t0 = dt.datetime.combine(day, dt.time(), TZ).timestamp()
        load = FactoryLoad(seed, 60.0, machines=args.machines)
        meter = MeterState(load, t0 - 60)
        engine = MetricsEngine(MetricsConfig(), {"m": DeviceMetricsConfig(demand_limit_kw=limit)})
        rules = [
            (
                label,
                DemandAlarm(limit, min_elapsed_s=m, clear_ratio=c, rearm=r),
                RecentPower(w),
                w,
            )
            for label, m, w, c, r in VARIANTS
        ]
        t = t0 - 60  # a minute before midnight: the first block is measured from its start
        while t <= t0 + 86400 + args.every:  # one reading past midnight closes the last
            values = {k: v for k, v in meter.advance(t).items() if k in METER_READS}
            reading = PollResult("m", t, values)
            closed, events, _ = engine.observe(reading)
            readings += 1
            block = t // 900 * 900
            for kind, *_ in events:
                if kind.startswith("demand_projected_"):
                    projected.event(block, t, kind == "demand_projected_high")
                elif kind == "demand_high":
                    at_close.alarm(block - 900, t)  # comes after the block it is about
            if values["active_power_w"] / 1000 > limit:
                naive.alarm(block, t)
            dm = engine.devices["m"]
            em = dm.electrical
            assert em is not None
            if closed and em.demand.last_block_kw is not None and block - 900 >= t0:
                blocks[block - 900] = em.demand.last_block_kw
            d = em.demand
            block_kwh = d.block_kwh if d.block_start == block else 0.0
            for label, rule, power, window in rules:
                kw = power.update(t, d.booked_kwh) if window else values["active_power_w"] / 1e3
                alarm = None if kw is None else rule.update(t, block_kwh, kw)
                if alarm is not None:
                    variants[label].event(block, t, alarm.kind == "demand_projected_high")
            t += args.every
    cpu = time.process_time() - started
    blocks = {b: kw for b, kw in blocks.items() if b < t0 + 86400}
    high = sum(1 for kw in blocks.values() if kw > limit)
    print(
        f"bench/demand_alarm: {args.days} weekday(s) × 96 blocks = {len(blocks)} blocks, "
        f"FactoryLoad 60 kW rated, machines {args.machines:g}/slot, limit {limit:g} kW, "
        f"a reading every {args.every:g} s ({readings} readings, {cpu:.1f} CPU-s)"
    )
    print(f"  blocks that ended above the limit: {high}")
    print(
        "  lead: minutes before the block's end; false: alarms in blocks that ended at or below"
        " the limit;\n  premature: oks in blocks that still ended above it; blind: blocks that"
        " ended above it\n  with the alarm off after an ok (a load put back, no new alarm)"
    )
    print()
    head = (
        f"  {'alarm':<28} {'lead min: min median max':>24}   {'false':>5}  {'missed':>6}"
        f"  {'highs':>5} {'oks':>4} {'premature':>9} {'blind':>5}"
    )
    print(head)
    for label, score in (
        ("projected (Vatio)", projected),
        ("at close (demand_high)", at_close),
        ("power > limit (naive)", naive),
    ):
        print(f"  {label:<28} {score.summary(blocks, limit):>24}")
    # blocks the projection found above the limit only after its first look (a machine
    # started in mid-block), as opposed to blocks already above when first projected
    first_look = 900 - MIN_ELAPSED_S - args.every
    late = sorted(
        projected.first[b] / 60
        for b, kw in blocks.items()
        if kw > limit and projected.first.get(b, 900) < first_look
    )
    if late:
        print(
            f"  of which crossed in mid-block: {len(late)}, lead min {late[0]:.1f} / median "
            f"{statistics.median(late):.1f} / max {late[-1]:.1f}"
        )
    print()
    print("  the projection with other settings (same block energy):")
    print(head)
    for label, score in variants.items():
        print(f"  {label:<28} {score.summary(blocks, limit):>24}")
    by_hour: dict[int, int] = defaultdict(int)
    for b, kw in blocks.items():
        if kw > limit:
            by_hour[dt.datetime.fromtimestamp(b, TZ).hour] += 1
    print()
    print("  blocks above the limit by local hour:", dict(sorted(by_hour.items())))


if __name__ == "__main__":
    main()
