"""``python -m pipeline``: thin entry point (see pipeline.job)."""
from pipeline.job import main
from transforms.cli import exit_process

exit_process(main())
