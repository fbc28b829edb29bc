"""The shared ``main`` of both jobs: ``--help`` from the job's options, quiet logs, exit codes."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Optional, Sequence

from transforms.errors import InputError
from transforms.job_options import add_job_arguments

PASS_THROUGH = ("Beam runner flags (--runner, --project, --region, --temp_location, --setup_file, "
                "--direct_num_workers, ...) pass through.")
NOISY_LOGGERS = ("apache_beam", "absl", "tensorflow", "sentence_transformers", "urllib3", "httpx")


EXIT_OK, EXIT_CONSERVATION, EXIT_USAGE, EXIT_INPUT, EXIT_RUN_FAILED = 0, 1, 2, 3, 4
"""Exit codes of both jobs: 0 done; 1 the run report's conservation check failed; 2 a usage error
(a bad flag or value); 3 an input or setup error found before any work (no input file, a broken
library, an unreachable model endpoint); 4 the run finished and wrote its report, but failed
(a stage whose dead letters exceed --max_dead_fraction of its input, or a source all of whose
rows are dead letters)."""


def job_main(argv: Optional[Sequence[str]], prog: str, description: str, options_cls,
             run: Callable[[Sequence[str]], dict]) -> int:
    """Runs ``run(argv)`` and returns its exit code (:data:`EXIT_OK` ...): a message, not a
    traceback, for every error a user can fix."""
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
    except (InputError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not report["conservation_ok"]:
        return EXIT_CONSERVATION
    if report.get("failures"):
        print(f"error: the run failed: {report['failures'][0]}"
              + (f" (and {len(report['failures']) - 1} more in report.json)" if len(report["failures"]) > 1 else ""),
              file=sys.stderr)
        return EXIT_RUN_FAILED
    return EXIT_OK


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

