"""Errors the CLI reports as one line with exit code 2 (bad usage or bad input), never as a traceback."""


class PipelineError(Exception):
    """A user-facing error: bad arguments, unreadable input, a refused action.

    The message must be one line and name the file, flag or value at fault.
    """

    exit_code = 2
