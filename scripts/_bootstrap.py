"""Shared start of every rule script: make the repository's dst3d package importable (also in per-rule conda
environments that do not install it) and send the job's output to its log file."""

import sys
from pathlib import Path


def start(snakemake, name):
    repository = str(Path(snakemake.scriptdir).resolve().parent)
    if repository not in sys.path:
        sys.path.insert(0, repository)
    from dst3d.logs import send_output_to

    return send_output_to(snakemake.log[0], name)
