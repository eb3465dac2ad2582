"""Two-stage recommendation: several generators propose candidates, a learned ranker orders them.

data.py        RankingData: one row per (case, candidate), features, labels, histories
generate.py    walk sessions with several fitted models, merge their top-k per case
features.py    the features of every (case, candidate), vectorised (offline and served)
rankers/       learned rankers behind one interface (gbdt, ftrl, attention_gru, popularity)
protocol.py    the honest offline protocol: generators before a cut, ranker after it
"""
