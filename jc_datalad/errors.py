"""The project's own error type.

Library code raises :class:`JcError` when a request cannot proceed; the CLI
turns it into a clean message in one place. Messages name the file or key
and the fix.
"""


class JcError(Exception):
    """A request that cannot proceed, with a message naming what and how to fix it."""
