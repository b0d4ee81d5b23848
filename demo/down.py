"""`make demo-down`: stop a running demo and everything it started.

The demo writes its pid to .esteira/demo/demo.pid. SIGTERM makes it clean up exactly as on Ctrl-C
(local ECS tasks, the MLflow server, tofu, the emulator). Whatever is still alive after the grace
period (the demo itself was killed hard, say) is found as its descendants and killed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psutil


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workdir", default=".esteira/demo")
    parser.add_argument("--grace", type=float, default=30.0)
    args = parser.parse_args(argv)
    pidfile = Path(args.workdir) / "demo.pid"
    if not pidfile.exists():
        print("no demo running (no pid file)")
        return 0
    try:
        demo = psutil.Process(int(pidfile.read_text().strip()))
    except (ValueError, psutil.NoSuchProcess):
        pidfile.unlink(missing_ok=True)
        print("no demo running (stale pid file removed)")
        return 0
    family = [demo, *demo.children(recursive=True)]
    demo.terminate()
    psutil.wait_procs([demo], timeout=args.grace)
    leftovers = [p for p in family if p.is_running()]
    for proc in leftovers:
        proc.kill()
    psutil.wait_procs(leftovers, timeout=5)
    pidfile.unlink(missing_ok=True)
    print(f"demo {demo.pid} stopped; {len(leftovers)} process(es) had to be killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
