"""``python -m pipeline``: thin entry point (see pipeline.job)."""
import sys

from pipeline.job import main

sys.exit(main())
