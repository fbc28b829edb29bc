"""The shared ``main`` of both jobs: ``--help`` from the job's options, quiet logs, exit codes."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Optional, Sequence

from transforms.job_options import add_job_arguments

PASS_THROUGH = ("Beam runner flags (--runner, --project, --region, --temp_location, --setup_file, "
                "--direct_num_workers, ...) pass through.")
NOISY_LOGGERS = ("apache_beam", "absl", "tensorflow", "sentence_transformers", "urllib3", "httpx")


def job_main(argv: Optional[Sequence[str]], prog: str, description: str, options_cls,
             run: Callable[[Sequence[str]], dict]) -> int:
    """Runs ``run(argv)``: 0 when conservation holds, 1 when it does not, 2 on a usage error
    (bad flags, missing input or library: a message, not a traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(argv):
        parser = argparse.ArgumentParser(prog=prog, description=description,
                                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_job_arguments(parser, options_cls)
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        report = run(argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if report["conservation_ok"] else 1


def exit_process(code: int) -> None:
    """Ends a finished job's process with ``code``, skipping native teardown.

    The job's output and report are written and flushed by then; what is left are the static
    destructors of native libraries (TensorFlow, ScaNN, spaCy's thinc), which can abort the
    process at interpreter shutdown ("terminate called without an active exception", seen once in
    `make run` on a fresh clone) and turn a finished run into a failed command.
    """
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)

