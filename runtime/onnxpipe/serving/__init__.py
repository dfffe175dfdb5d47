"""`onnxpipe serve`: an HTTP server with dynamic batching, and a Ray Serve deployment of the same pipelines.

Imported only by `onnxpipe serve` (and by users who ask for it): its web stack (starlette, uvicorn) is the
`serve` extra, Ray Serve the `ray` extra. `import onnxpipe` never imports this package.

- command.py: the `onnxpipe serve` arguments; checks the extra is installed, then hands over (web-stack free).
- config.py: ServeConfig, ModelSpec, RayOptions: the options, checked once at start (web-stack free).
- protocol.py: what a request must pass: auth, body-size limit, deadline, body parsing, error answers.
- state.py: ServerState: the pipelines, their batchers, metrics, in-flight count and draining flag.
- routes.py, embeddings.py, streaming.py: the route handlers; app.py: puts them on their paths.
- batcher.py, coalesce.py: the queue and worker per model; turning requests into few pipeline calls.
- metrics.py: Prometheus counters and histograms. server.py: uvicorn with draining. ray_app.py: Ray Serve.
"""
