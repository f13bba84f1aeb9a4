"""User-facing errors.

A `RobenchError` is a user mistake (unknown name, missing or corrupt file, bad range, incompatible
checkpoint). The CLI prints its message as one line on stderr and exits with code 2; anything
else is an internal bug and may traceback. An error raised in the user's own code (a factory, a
model's forward) is one line naming the file, the function and the exception; with the environment
variable ROBENCH_DEBUG=1 it propagates with its full traceback instead.
"""

import os


class RobenchError(ValueError):
    """A mistake the user can fix; the message names the problem and the fix. A ValueError, so
    Python callers that catch bad arguments the usual way catch it too."""


def unknown_name(kind: str, name: str, known) -> RobenchError:
    """The error for a name missing from a registry, listing the valid names."""
    return RobenchError(f"unknown {kind} '{name}'; choose one of: {', '.join(sorted(known))}")


def debugging() -> bool:
    """ROBENCH_DEBUG=1: errors in the user's code keep their traceback (see `user_code_failed`)."""
    return os.environ.get("ROBENCH_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def user_code_failed(where: str, error: BaseException, fix: str) -> RobenchError:
    """The one-line error for an exception raised in the user's own code at `where` (file:function).
    Under ROBENCH_DEBUG=1 the original exception is re-raised instead, traceback and all."""
    if debugging():
        raise error
    first = (str(error).splitlines() or [""])[0][:200]
    return RobenchError(f"{where} raised {type(error).__name__}{': ' + first if first else ''}; {fix} "
                        f"(ROBENCH_DEBUG=1 shows the traceback)")
