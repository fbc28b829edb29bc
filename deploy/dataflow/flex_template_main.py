"""Flex Template entry point of the pipeline job: build the job graph, submit it, exit.

The worker image names this file in FLEX_TEMPLATE_PYTHON_PY_FILE; Dataflow's Flex Template
launcher runs it with the template's parameters as ``--name=value`` flags (metadata.json).

Why not ``python -m pipeline``: a Flex Template's main program must return once the job is
submitted (Dataflow's docs: do not call ``wait_until_finish``), while ``python -m pipeline``
waits for the job so that it can write ``OUTPUT/report.json`` from the job's metrics and print
a summary of the pairs. A Flex Template run therefore writes no report.json; its per-stage
counters (``<stage>/in``, ``/out``, ``/filtered|reason``, ``/dead|reason``) are in the Dataflow
UI and the job's metrics API.
"""
from __future__ import annotations

import logging
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Submits the pipeline job for ``argv``; 0 once submitted, 2 on a usage error, 3 on an input
    or setup error (transforms/cli.py's exit codes)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.job import create_pipeline
    from transforms.run_report import submitted_job_id

    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from transforms.cli import EXIT_INPUT, EXIT_USAGE
    from transforms.errors import InputError

    from transforms.secrets import refuse_secret_flags

    try:
        refuse_secret_flags(args)
        pipeline = create_pipeline(PipelineOptions(args))
    except (InputError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    result = pipeline.run()
    job_id = submitted_job_id(result)  # None when the launcher asked for a template file
    print(f"Submitted the pipeline job{f' {job_id}' if job_id else ''}; not waiting (Flex Template launch).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
