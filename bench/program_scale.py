"""How long the stack program takes to evaluate under Pulumi mocks as subscriptions grow.

Goal (issue 2): 1,000 subscriptions evaluate in under 10 s on a 2-core machine, and the time
grows no worse than linearly. The 10-subscription run is the baseline in the same run; the
figures printed are wall-clock seconds (best of --repeat) and time per subscription.

    python bench/program_scale.py [--sizes 10 100 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from events_infra.components.offline import run_program  # noqa: E402


def config_with(subscriptions: int) -> dict[str, str]:
    subs = [
        {"name": f"consumer-{i:04d}", "enable_message_ordering": i % 2 == 0}
        for i in range(subscriptions)
    ]
    return {
        "gcp:project": "cotton-erp",
        "events-infra:production": "true",
        "events-infra:subscriptions": json.dumps(subs),
    }


def measure(subscriptions: int, repeat: int) -> tuple[float, int]:
    best = float("inf")
    declared = 0
    for _ in range(repeat):
        started = time.perf_counter()
        run = run_program(config_with(subscriptions), stack="bench")
        best = min(best, time.perf_counter() - started)
        declared = len(run.resources)
    return best, declared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(f"{'subscriptions':>13} {'resources':>9} {'seconds':>8} {'ms/sub':>7} {'x baseline':>10}")
    baseline_per_sub = None
    for size in args.sizes:
        seconds, declared = measure(size, args.repeat)
        per_sub = seconds / size * 1000
        baseline_per_sub = baseline_per_sub or per_sub
        print(
            f"{size:>13} {declared:>9} {seconds:>8.3f} {per_sub:>7.2f} "
            f"{per_sub / baseline_per_sub:>10.2f}"
        )
    print("goal: largest size under 10 s; ms/sub not growing with size (linear or better)")


if __name__ == "__main__":
    main()
