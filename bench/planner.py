"""bench/planner: requests per poll for each built-in profile, planned vs one per quantity.

    python -m bench.planner

Also prints the registers read and the wire time per poll at 9600 baud, since on RS-485 the
requests are what costs: two inter-frame gaps and a device turnaround each.
"""

from __future__ import annotations

from drivers.modbus.planner import plan_reads
from drivers.modbus.profile import builtin_profiles, load_profile
from drivers.modbus.transport import read_wire_time


def main() -> None:
    print(
        f"{'profile':<18} {'naive (1/value)':>15} {'planned':>7} {'ratio':>6} "
        f"{'regs':>5} {'wire@9600 naive':>16} {'planned':>8}"
    )
    for name in builtin_profiles():
        profile = load_profile(name)
        plan = plan_reads(profile.points, profile.limits)
        naive = len(profile.points)  # one request per quantity
        naive_wire = sum(read_wire_time(p.width, 9600) for p in profile.points)
        wire = sum(read_wire_time(r.count, 9600) for r in plan)
        regs = sum(r.count for r in plan)
        print(
            f"{name:<18} {naive:>15} {len(plan):>7} {len(plan) / naive:>6.3f} "
            f"{regs:>5} {naive_wire * 1000:>13.0f} ms {wire * 1000:>5.0f} ms"
        )


if __name__ == "__main__":
    main()
