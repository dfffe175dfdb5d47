"""Embedding a corpus: `onnxpipe embed` (a JSONL, CSV or Parquet file to Parquet or .npy, in resumable chunks) and
the texts-to-vectors step it shares with `onnxpipe.ray.embed_dataset`."""
