"""``python -m templates_mining``: thin entry point (see templates_mining.job)."""
import sys

from templates_mining.job import main

sys.exit(main())
