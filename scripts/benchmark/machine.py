"""What the run ran on: CPU, cores, memory, OS, PostgreSQL, Python and library versions."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def _os() -> str:
    name = platform.system()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{name}, kernel {platform.release()}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def describe(postgres: dict[str, str]) -> dict[str, str]:
    return {
        "CPU": f"{_cpu_model()} ({platform.machine()})",
        "Cores": str(os.cpu_count()),
        "Memory": _memory(),
        "OS": _os(),
        "PostgreSQL": (f"{postgres.get('server_version', '?')}; fsync={postgres.get('fsync')}, "
                       f"synchronous_commit={postgres.get('synchronous_commit')}, "
                       f"wal_sync_method={postgres.get('wal_sync_method')}, "
                       f"shared_buffers={postgres.get('shared_buffers')}"),
        "Python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "Libraries": (f"eventsourcing {_version('eventsourcing')}, psycopg {_version('psycopg')}"
                      f", SQLAlchemy {_version('SQLAlchemy')}, FastAPI {_version('fastapi')}, "
                      f"uvicorn {_version('uvicorn')} (httptools {_version('httptools')}, uvloop "
                      f"{_version('uvloop')})"),
    }
