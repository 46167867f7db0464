"""``python -m echostream_bench.agent``: the same as ``echostream-bench-agent``."""

import sys

from echostream_bench.agent import main

sys.exit(main())
