"""Failures of the content domain. Each carries the OCI Distribution error code that names it."""

from __future__ import annotations


class ContentError(Exception):
    """Base class: `code` is the OCI error code, the message is for humans."""

    code = "UNKNOWN"

    def __init__(self, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class BlobUnknown(ContentError):
    code = "BLOB_UNKNOWN"


class BlobUploadInvalid(ContentError):
    code = "BLOB_UPLOAD_INVALID"


class BlobUploadUnknown(ContentError):
    code = "BLOB_UPLOAD_UNKNOWN"


class DigestInvalid(ContentError):
    code = "DIGEST_INVALID"


class ManifestBlobUnknown(ContentError):
    code = "MANIFEST_BLOB_UNKNOWN"


class ManifestInvalid(ContentError):
    code = "MANIFEST_INVALID"


class ManifestTooLarge(ManifestInvalid):
    """Larger than the configured limit (4 MiB by default)."""


class ManifestUnknown(ContentError):
    code = "MANIFEST_UNKNOWN"


class ManifestReferenced(ContentError):
    """Deleting it would leave an index pointing at nothing."""

    code = "DENIED"


class NameInvalid(ContentError):
    code = "NAME_INVALID"


class NameUnknown(ContentError):
    code = "NAME_UNKNOWN"


class SizeInvalid(ContentError):
    code = "SIZE_INVALID"


class TagInvalid(ContentError):
    code = "TAG_INVALID"


class RangeInvalid(ContentError):
    """A chunk does not start where the upload currently ends."""

    code = "BLOB_UPLOAD_INVALID"

    def __init__(self, message: str, current_size: int) -> None:
        super().__init__(message)
        self.current_size = current_size


class PaginationInvalid(ContentError):
    code = "PAGINATION_NUMBER_INVALID"


class Unsupported(ContentError):
    code = "UNSUPPORTED"
