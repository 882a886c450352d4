"""Domain errors. The API maps each class to one HTTP status in a single table."""


class SpatialError(Exception):
    """Base class of every error the platform reports to a user."""


class ConfigurationError(SpatialError):
    """Settings or the machine are not in a state the platform can work with."""


class DatabaseUnavailableError(SpatialError):
    """The database cannot be reached or started."""


class StorageFullError(SpatialError):
    """A store (the raster store's disk) has no room for what is being written (HTTP 507);
    nothing was kept of it."""


class NotFoundError(SpatialError):
    """A named thing (collection, item, job) does not exist for the caller."""


class InvalidInputError(SpatialError):
    """Input was rejected; the message says what was wrong."""


class TooLargeError(InvalidInputError):
    """Input is larger than a configured limit."""


class UnauthorizedError(SpatialError):
    """The request needs credentials it did not give (HTTP 401)."""


class ForbiddenError(SpatialError):
    """The caller may see the resource but not do this to it (HTTP 403)."""


class TooManyRequestsError(SpatialError):
    """Too many requests, or too many failed sign-ins (HTTP 429)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PreconditionFailedError(SpatialError):
    """The resource changed since the version the client named (HTTP 412)."""


class ConflictError(SpatialError):
    """The change contradicts the data, e.g. a key already in use (HTTP 409)."""


class UnsupportedMediaTypeError(InvalidInputError):
    """The body is not in a format the resource takes (HTTP 415)."""


class NotAcceptableError(InvalidInputError):
    """None of the media types the client accepts can be produced (HTTP 406)."""


class ServerError(SpatialError):
    """The server failed to answer a valid request (HTTP 5xx other than 503), or could
    not be reached; raised by :class:`spatial.Client`."""
