"""`onnxpipe serve`: an HTTP server with dynamic batching, and a Ray Serve deployment of the same pipelines.

Imported only by `onnxpipe serve` (and by users who ask for it): its web stack (starlette, uvicorn) is the
`serve` extra, Ray Serve the `ray` extra. `import onnxpipe` never imports this package.
"""
