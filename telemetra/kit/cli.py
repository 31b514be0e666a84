"""What every ``telemetra`` sub-command shares, whichever module defines it (``telemetra.cli``,
``telemetra.readings.cli``): its settings, where a configuration error is a message and exit
status 2 rather than a traceback. Sub-command modules import this, never the root command."""

import typer


def load_settings():
    """The settings from the environment and ``.env``; exit 2 naming what is wrong."""
    # Imported here: `telemetra --help` and `telemetra version` need neither.
    from pydantic import ValidationError

    from telemetra.settings import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            typer.echo(f"configuration error: {error['msg']}", err=True)
        raise typer.Exit(2) from None
