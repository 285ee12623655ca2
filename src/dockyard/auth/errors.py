"""Failures of the access-control services, each with a stable code, an HTTP status and the field at fault."""

from __future__ import annotations


class AuthError(Exception):
    """Base class: `code` is stable, `message` is for humans, `field` names the input at fault."""

    status = 400
    code = "INVALID"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(AuthError):
    """The request names something malformed."""

    status = 400
    code = "INVALID_INPUT"


class NotFound(AuthError):
    """The account, team, repository or token does not exist (or is not visible to the caller)."""

    status = 404
    code = "NOT_FOUND"


class Conflict(AuthError):
    """The name is taken, or the change would leave things inconsistent."""

    status = 409
    code = "CONFLICT"


class Forbidden(AuthError):
    """The caller is known but may not do this."""

    status = 403
    code = "DENIED"


class Unauthenticated(AuthError):
    """Credentials are missing or wrong."""

    status = 401
    code = "UNAUTHORIZED"


class AccountDisabled(Unauthenticated):
    """The credentials are right, but the account is deactivated (said only after a correct secret)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the account {name} is deactivated; ask an administrator to reactivate it")


class CredentialRefused(Unauthenticated):
    """A credential this surface does not accept, or a bearer token that is malformed, forged, expired or
    revoked (`invalid_token`: the client should fetch a new one)."""

    def __init__(self, message: str, *, invalid_token: bool = False) -> None:
        super().__init__(message)
        self.invalid_token = invalid_token


class Throttled(AuthError):
    """Too many failed logins: wait `retry_after` seconds."""

    status = 429
    code = "TOO_MANY_REQUESTS"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after} s")
        self.retry_after = retry_after


class TooLarge(AuthError):
    """The request body is over the configured limit."""

    status = 413
    code = "TOO_LARGE"


class Unprocessable(AuthError):
    """The request is well formed but its content cannot be used (a file of the wrong format)."""

    status = 422
    code = "INVALID_INPUT"
