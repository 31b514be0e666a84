from telemetra.cli import app

app()
