"""The feature store: each ranker statistic defined once, served offline and online alike.

    definitions.py  every feature as an aggregation over the event log (no polars, no redis)
    offline.py      the definitions computed per day into Parquet, point-in-time correct:
                    the row of day D holds values of the events before D's start only
    online.py       the latest day written to Redis (one version at a time) and read back
                    for a request's candidates in one round trip

    nextbest features materialize --events events.parquet --out features/ --online redis://...

Feast (0.67.0, with its Redis online store) was measured for this and not adopted: see
docs/operations.md, "Feature store".
"""
