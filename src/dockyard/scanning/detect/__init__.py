"""Package detectors, one module per ecosystem; `DETECTORS` is the default set `scan_layers` runs."""

from __future__ import annotations

from dockyard.scanning.detect.apk import ApkDetector
from dockyard.scanning.detect.base import Detector
from dockyard.scanning.detect.dpkg import DpkgDetector
from dockyard.scanning.detect.golang import GoBinaryDetector
from dockyard.scanning.detect.java import JavaArchiveDetector
from dockyard.scanning.detect.npm import NpmDetector
from dockyard.scanning.detect.python import PythonDetector
from dockyard.scanning.detect.rpm import RpmDetector

__all__ = [
    "DETECTORS",
    "ApkDetector",
    "Detector",
    "DpkgDetector",
    "GoBinaryDetector",
    "JavaArchiveDetector",
    "NpmDetector",
    "PythonDetector",
    "RpmDetector",
]

DETECTORS: tuple[Detector, ...] = (
    DpkgDetector(),
    ApkDetector(),
    RpmDetector(),
    PythonDetector(),
    NpmDetector(),
    GoBinaryDetector(),
    JavaArchiveDetector(),
)
