"""The `nextbest` command."""

from __future__ import annotations

import typer

from nextbest.cli.affinity import affinity_app
from nextbest.cli.backup import backup, restore
from nextbest.cli.batch import batch
from nextbest.cli.catalog import catalog_app
from nextbest.cli.data import data_app
from nextbest.cli.demo import demo
from nextbest.cli.evaluate import evaluate, train
from nextbest.cli.experiments import experiments_app
from nextbest.cli.features import features_app
from nextbest.cli.keys import keys_app
from nextbest.cli.keywords import keywords_app
from nextbest.cli.rules import rules_app
from nextbest.cli.serve import serve
from nextbest.cli.simulate import simulate
from nextbest.cli.tune import tune
from nextbest.cli.versions import models_app

app = typer.Typer(
    no_args_is_help=True,
    help="nextbest: session-aware recommendations for online shops.",
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(catalog_app, name="catalog")
app.add_typer(affinity_app, name="affinity")
app.add_typer(rules_app, name="rules")
app.add_typer(keywords_app, name="keywords")
app.add_typer(keys_app, name="keys")
app.add_typer(experiments_app, name="experiments")
app.add_typer(models_app, name="models")
app.add_typer(features_app, name="features")
app.command()(train)
app.command()(evaluate)
app.command()(tune)
app.command()(serve)
app.command()(demo)
app.command()(simulate)
app.command()(batch)
app.command()(backup)
app.command()(restore)

if __name__ == "__main__":
    app()
