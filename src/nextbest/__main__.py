"""`python -m nextbest ...` runs the CLI (as `torchrun -m nextbest train ...` needs)."""

from nextbest.cli.main import app

app()
