"""Real-time serving: the HTTP API, live session state, the model registry.

app.py, routes/     the API (FastAPI): events, recommendations, items, models, health
services.py         what a server process holds, built from settings.py
live.py             each event moves its session's state one model step
state/              where states live (in-process or Redis), as compact bytes
registry.py         which model version answers; switching without a pause
recommend.py        from a state to a filtered list; trends.py: live popularity and
                    co-visitation for items new since training
auth.py, limits.py, errors.py, metrics.py    keys, size limits, errors for people, Prometheus
"""
