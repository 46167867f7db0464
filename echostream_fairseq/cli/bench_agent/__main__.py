"""``python -m echostream_fairseq.cli.bench_agent``: the same as ``echostream-bench-agent``."""

import sys

from echostream_fairseq.cli.bench_agent import main

sys.exit(main())
