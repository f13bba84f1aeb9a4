"""User-facing errors.

A `RobenchError` is a user mistake (unknown name, missing or corrupt file, bad range, incompatible
checkpoint). The CLI prints its message as one line on stderr and exits with code 2; anything
else is an internal bug and may traceback.
"""


class RobenchError(ValueError):
    """A mistake the user can fix; the message names the problem and the fix. A ValueError, so
    Python callers that catch bad arguments the usual way catch it too."""


def unknown_name(kind: str, name: str, known) -> RobenchError:
    """The error for a name missing from a registry, listing the valid names."""
    return RobenchError(f"unknown {kind} '{name}'; choose one of: {', '.join(sorted(known))}")
