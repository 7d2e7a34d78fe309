"""Keep the libraries that see request bodies and credentials out of the logs below WARNING, whatever
levels a deployment sets later.

botocore logs every STS request body at DEBUG (the WebIdentityToken, the SAMLAssertion) and every
response (the SecretAccessKey, the SessionToken); httpx/httpcore log URLs and headers; authlib and
python3-saml log tokens and responses in places. Setting these loggers to WARNING at start is not
enough on its own: a deployment that later sets DEBUG on every logger (a logging config file, a
debugging session, `logging.config.dictConfig`) would undo it. So a filter also drops their records
below WARNING: on each of their loggers that exists (every library has imported its modules by the time
the app is built), and on every handler of the root logger, which catches the loggers created later.
"""

from __future__ import annotations

import logging

CHATTY_LIBRARIES = ("botocore", "boto3", "urllib3", "s3transfer", "httpx", "httpcore", "authlib", "joserfc",
                    "onelogin", "saml2", "xmlsec", "python_multipart", "multipart", "hpack", "h11")


class LibraryFloor(logging.Filter):
    """Drops records below WARNING from the chatty libraries; everything else passes."""

    def __init__(self, libraries: tuple[str, ...] = CHATTY_LIBRARIES) -> None:
        super().__init__()
        self.prefixes = libraries
        self.dotted = tuple(f"{name}." for name in libraries)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        name = record.name
        return not (name in self.prefixes or name.startswith(self.dotted))


FLOOR = LibraryFloor()


def _library_loggers() -> list[logging.Logger]:
    names = [name for name in list(logging.root.manager.loggerDict)
             if name in FLOOR.prefixes or name.startswith(FLOOR.dotted)]
    return [logging.getLogger(name) for name in {*names, *FLOOR.prefixes}]


def quiet_chatty_loggers() -> None:
    """WARNING for the libraries' loggers, and the floor on them and on the root logger's handlers.
    Idempotent: a filter already in place is not added twice."""
    for logger in _library_loggers():
        logger.setLevel(logging.WARNING)
        if FLOOR not in logger.filters:
            logger.addFilter(FLOOR)
    for handler in logging.getLogger().handlers:
        if FLOOR not in handler.filters:
            handler.addFilter(FLOOR)
