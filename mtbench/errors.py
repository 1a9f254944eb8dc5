"""The exception type for errors that a user can fix."""


class MtbenchError(Exception):
    """An error caused by input, files or options that the user controls.

    The command-line interface prints the message alone, without a traceback,
    and exits with status 2. The message names the file or value at fault and
    what to do about it.
    """
