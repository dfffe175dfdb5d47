"""`python -m onnxpipe_bench ...`: the benchmark harness behind `onnxpipe bench`."""

import sys

from .cli import main

sys.exit(main())
