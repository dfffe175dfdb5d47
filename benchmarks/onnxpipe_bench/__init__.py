"""onnxpipe's benchmark harness: onnxpipe vs the transformers torch pipeline vs Optimum, same inputs, same run.

`python -m onnxpipe_bench` (and `onnxpipe bench`) runs it; `onnxpipe_bench.bench.run_bench(BenchOptions(...))` is
the same run from Python. Importing this package imports nothing else: each engine's worker process
(`onnxpipe_bench.worker`) must start without the harness adding to its cold start.
"""
