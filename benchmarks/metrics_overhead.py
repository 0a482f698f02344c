"""Metrics reporting overhead: ``openbayestool.log_metric`` per call against a plain loop appending to a file.

One Gear execution in the PyTorch image (it has ``openbayestool``) runs, in the same process, N calls of
``openbayestool.log_metric("bench", i)`` (each a new HTTP connection to the execution's receiver on the
container's own loopback) and then N appends of the same record to a file (write + flush each), timing
every call. Afterwards the store must hold all N values, in order, with steps 1..N.

    python benchmarks/metrics_overhead.py [--calls 10000] [--image pytorch-2.14]

Target (issue 12): <= 2 ms per call (median) and no lost values.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

SCRIPT = """
import json, sys, time
import openbayestool

calls = int(sys.argv[1])
metric = []
for i in range(calls):
    started = time.perf_counter()
    openbayestool.log_metric("bench", i)
    metric.append(time.perf_counter() - started)
appended = []
with open("/tmp/baseline.jsonl", "a") as out:
    for i in range(calls):
        started = time.perf_counter()
        out.write('{"key": "bench", "value": %r}\\n' % float(i))
        out.flush()
        appended.append(time.perf_counter() - started)

def figures(times):
    times = sorted(times)
    return {"median": times[len(times) // 2], "p99": times[int(len(times) * 0.99)], "total": sum(times)}

print("BENCH " + json.dumps({"log_metric": figures(metric), "append": figures(appended)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--image", default="pytorch-2.14")
    args = parser.parse_args()

    from hyperai_provider.core.gears import GearService
    from hyperai_provider.core.settings import HyperAISettings
    from hyperai_provider.models.spec import build_spec

    root = Path(tempfile.mkdtemp(prefix="hyperai-metrics-bench-"))
    try:
        code = root / "code"
        code.mkdir()
        (code / "bench.py").write_text(SCRIPT)
        service = GearService(HyperAISettings(storage_root=root / "storage"))
        lines: list[str] = []
        started = time.monotonic()
        record = service.run(
            build_spec(gear="bench", image=args.image, command=f"python3 bench.py {args.calls}", code=code),
            on_line=lines.append,
        )
        elapsed = time.monotonic() - started
        result = json.loads(next(line for line in lines if line.startswith("BENCH ")).removeprefix("BENCH "))
        points = service.store.metrics.points(record.id, "bench")
        in_order = [(p.step, p.value) for p in points] == [(i + 1, float(i)) for i in range(args.calls)]
        warnings = [line for line in lines if "WARNING" in line]
        service.backend.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"{args.calls:,} calls in one execution ({args.image}), execution {elapsed:.1f} s in all")
    print(f"{'what':<34} {'median ms':>10} {'p99 ms':>8} {'total s':>8}")
    for name, label in (("log_metric", "openbayestool.log_metric"), ("append", "append to a file (write+flush)")):
        figures = result[name]
        print(f"{label:<34} {figures['median'] * 1e3:>10.3f} {figures['p99'] * 1e3:>8.3f} {figures['total']:>8.2f}")
    ratio = result["log_metric"]["median"] / result["append"]["median"]
    print(f"log_metric / append (median) = {ratio:.0f}x")
    lost = args.calls - len(points)
    print(f"stored {len(points):,} of {args.calls:,} values (lost {lost}), in order with steps 1..N: {in_order}")
    print(f"openbayestool warnings: {len(warnings)}")
    median_ms = result["log_metric"]["median"] * 1e3
    verdict = "met" if median_ms <= 2 and lost == 0 and in_order else "NOT met"
    print(f"target (<= 2 ms median, no lost values): {verdict}")


if __name__ == "__main__":
    main()
