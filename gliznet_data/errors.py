"""Errors the user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input or an unusable environment: a flag, a file, a key, a server."""
