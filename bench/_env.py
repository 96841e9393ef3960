"""Shared benchmark header: the evidence every result is printed with."""

from __future__ import annotations

import os
import platform
import sys
import time

import torch


def environment(device: str = "cpu") -> dict[str, str]:
    """Machine, versions, threads and the exact command, for BENCHMARKS.md."""
    if device.startswith("cuda") and torch.cuda.is_available():
        hw = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    else:
        hw = _cpu_name() + f", {os.cpu_count()} cores"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "device": hw,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "threads": str(torch.get_num_threads()),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def print_header(device: str = "cpu") -> None:
    for key, value in environment(device).items():
        print(f"# {key}: {value}")


def stolen_seconds() -> float:
    """CPU seconds the hypervisor has given other guests so far (/proc/stat's steal): this
    machine's speed moves with it, so benchmarks report it next to their timings."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0
