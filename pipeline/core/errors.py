"""Errors the CLI reports as one line with exit code 2 (bad usage or bad input), never as a traceback."""


class PipelineError(Exception):
    """A user-facing error: bad arguments, unreadable input, a refused action.

    The message must be one line and name the file, flag or value at fault.
    """

    exit_code = 2


class VideoError(PipelineError):
    """A video (a source clip, its zip member or a segment file) cannot be used; the message is a one-line reason.

    Raised by `pipeline.av.video` while segmenting (the clip is then skipped) and by `pipeline.model.video_input` while
    loading a segment's frames for the model (the sample is then skipped and counted).
    """


def first_line(err: BaseException, limit: int = 300) -> str:
    """An exception's first message line (at most `limit` characters), or its type's name when it has no message."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__
