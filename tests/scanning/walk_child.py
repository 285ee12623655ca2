"""Read one layer blob with every detector and the default limits (`scan_layers`: the walk, then the
detectors reading what it kept) in a process of its own, and print what happened as JSON: the error
(class and message) if any, and how far the peak resident memory grew above the interpreter's own (KiB).
The address space is capped so a regression fails, not swaps."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from dockyard.scanning.errors import ScanError
from dockyard.scanning.inventory import scan_layers
from dockyard.scanning.layers import Layer


def _status(field: str) -> int:
    """A size from /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    """Walk the layer at argv[1]; argv[2] is the extra address space allowed, in MiB."""
    cap = (_status("VmSize") + int(sys.argv[2]) * 1024) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    # Reset the peak to what is resident now, so the imports' own peak does not hide the walker's.
    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    outcome: dict[str, object] = {"error": None, "message": None}
    try:
        with Path(sys.argv[1]).open("rb") as stream:
            scan_layers([Layer("sha256:hostile", stream)])
    except ScanError as exc:
        outcome = {"error": type(exc).__name__, "message": str(exc)}
    outcome["growth_kib"] = _status("VmHWM") - before
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
