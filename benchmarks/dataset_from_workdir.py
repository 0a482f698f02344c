"""Creating a dataset version from a working directory of 50,000 small files vs `cp -a` of them.

A closed working directory never changes, so the version shares its files (hard links) instead of
copying them. Both are measured in the same run, interleaved, on the same files.

    python benchmarks/dataset_from_workdir.py [--files 50000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.models.spec import build_spec

WRITE_FILES = (
    "import os\n"
    "os.makedirs('files', exist_ok=True)\n"
    "block = b'x' * 1024\n"
    "for i in range({count}):\n"
    "    d = f'files/{{i // 1000:03d}}'\n"
    "    os.makedirs(d, exist_ok=True)\n"
    "    open(f'{{d}}/{{i}}.bin', 'wb').write(block)\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hyperai-bench-dataset-"))
    service = GearService(HyperAISettings(storage_root=root / "storage"))
    record = service.run(
        build_spec(
            gear="bench", image="python", command=["python3", "-c", WRITE_FILES.format(count=args.files)]
        ),
        on_line=lambda _: None,
    )
    workdir = service.workdir(record)
    service.datasets.create("bench")
    link_times, copy_times = [], []
    for round_ in range(args.rounds):
        started = time.perf_counter()
        version = service.datasets.add_version_from_execution("bench", record.id)
        link_times.append(time.perf_counter() - started)
        target = root / f"copy-{round_}"
        started = time.perf_counter()
        subprocess.run(["cp", "-a", str(workdir), str(target)], check=True)
        copy_times.append(time.perf_counter() - started)
        assert version.files >= args.files
    link, copy = statistics.median(link_times), statistics.median(copy_times)
    print(f"{args.files:,} files of 1 KiB, median of {args.rounds} interleaved rounds")
    print(f"{'cp -a (baseline)':<34} {copy:8.3f} s   1.00x")
    print(
        f"{'dataset version from execution':<34} {link:8.3f} s   {link / copy:.2f}x  ({copy / link:.1f}x faster)"
    )
    subprocess.run(["rm", "-rf", str(root)], check=True)


if __name__ == "__main__":
    main()
