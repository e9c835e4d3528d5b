"""gunicorn's SIGHUP, made safe for the files the workers read at boot.

gunicorn answers SIGHUP by starting new workers, and a worker whose commands or webhooks file
does not parse fails to boot, which halts the whole server. So the master checks both files
first: a bad one is refused (the files log their own REFUSED line) and the running workers go
on with the version they have, as every other process does on SIGHUP.
"""

from __future__ import annotations

from owaction.config import Settings


def files_are_usable(settings: Settings) -> bool:
    """True when the commands and webhooks files (where set) load."""
    from owaction.commands import CommandFileError, CommandMap
    from owaction.webhooks.hooks import HookFileError, HookMap

    try:
        CommandMap(settings.commands_file, unmapped_package=settings.unmapped_command_package,
                   max_timeout_ms=settings.max_action_timeout)
        HookMap(settings.webhooks_file)
    except (CommandFileError, HookFileError):
        return False
    return True


def guard_reload(server, settings: Settings) -> None:
    """Make ``server`` (gunicorn's Arbiter) reload on SIGHUP only when the files are usable."""
    reload = server.handle_hup

    def handle_hup() -> None:
        if files_are_usable(settings):
            reload()
        else:
            server.log.error("SIGHUP refused: a file the workers need does not load; "
                             "the running workers keep their version")

    server.handle_hup = handle_hup
