"""`python -m onnxpipe_export MODEL --task T --output DIR`: the export command line (`onnxpipe export` runs it)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
