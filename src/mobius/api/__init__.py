"""The service: `mobius serve` (FastAPI on uvicorn) over the same library functions the CLI uses.

- `app.create_app(ws)`: the application (health, readiness, metrics, games API, read-only views, status page).
- `readiness.readiness(ws, only=None) -> results.Report`: the readiness checks, reusable without HTTP.
- `metrics.register_collector(name, fn)`: a capability's gauges in `/metrics` and at `/metrics/<name>`.
"""
