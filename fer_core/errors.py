"""The one error type a user can cause; the CLI turns it into one line and exit code 2."""


class FerError(Exception):
    """A problem with the user's input (paths, files, settings), told in one line."""
