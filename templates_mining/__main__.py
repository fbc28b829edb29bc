"""``python -m templates_mining``: thin entry point (see templates_mining.job)."""
from templates_mining.job import main
from transforms.cli import exit_process

exit_process(main())
