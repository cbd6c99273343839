"""What the commands do — plan, upgrade, regrade, key rotation, import and export, demo data —
callable alike from the CLI (a thin layer that parses options and prints), the web app and the
tests. A refusal is an :class:`OpsError` carrying the one message to show; nothing was changed."""


class OpsError(Exception):
    """An operation refused or could not start; its message is for the person who asked, and
    nothing was changed."""
