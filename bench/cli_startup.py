"""How long `eventsctl --help` takes, next to `gcloud --help` (the issue's reference: ~0.6 s).

Goal (issue 2): `eventsctl --help` under 0.3 s as commands are added; heavy client libraries are
imported inside the commands that use them. Best and median of --repeat runs, wall clock.

    python bench/cli_startup.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(command: list[str], repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        runs.append(time.perf_counter() - started)
    return min(runs), statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    eventsctl = Path(sys.executable).parent / "eventsctl"
    commands = {
        "eventsctl --help": [str(eventsctl), "--help"],
        "eventsctl dlq replay --help": [str(eventsctl), "dlq", "replay", "--help"],
    }
    if shutil.which("gcloud"):
        commands["gcloud --help (reference)"] = ["gcloud", "--help"]
    print(f"{'command':<30} {'best s':>7} {'median s':>9}")
    for label, command in commands.items():
        best, median = timed(command, args.repeat)
        print(f"{label:<30} {best:>7.3f} {median:>9.3f}")
    print("goal: eventsctl --help under 0.3 s")


if __name__ == "__main__":
    main()
