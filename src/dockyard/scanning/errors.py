"""Errors of the scanning core; every failure on untrusted input is a `ScanError`."""

from __future__ import annotations


class ScanError(Exception):
    """An image or advisory feed could not be read; the message says what and where."""


class AdvisoryFormatError(ScanError):
    """An OSV record or feed that is not valid JSON of the expected shape."""


class LayerFormatError(ScanError):
    """A layer that is not a readable tar stream (corrupt, truncated, unknown compression)."""


class UnsafeLayerError(ScanError):
    """A layer entry that would escape the image root or abuse the reader (traversal, absolute names)."""


class LimitExceededError(ScanError):
    """A size limit was passed: decompressed bytes per layer or image, one file, a header, symlink hops."""
