"""The request pipeline: retrieve -> rank -> rules -> diversify -> promote -> fill, per placement.

candidates.py   the one currency between stages (rows, scores, sources, reasons, features)
items.py        the shop's items as columns (the row space every stage shares)
context.py      who is asking and what the engine knows of them, resolved once per request
stages.py       the interfaces: Generator (and ModelGenerator), Ranker, Rule, Diversifier
retrieval/      generators: the session model, similar items, complements, live trends
ranking/        rankers: priority order with shares, reciprocal-rank fusion, personal re-rank
rules/          exclusions, filter expressions, learned purchase rules, promotions and pins
diversity.py    MMR and a cap per category
pipeline.py     a placement's stages in order, and the fill
placements.py   the placements file (TOML) and the shipped defaults (placements.toml)
"""
