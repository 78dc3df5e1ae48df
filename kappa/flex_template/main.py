"""Flex-template entry point: `command=run|backfill` plus the kappactl options, the rest to Beam.

The launcher passes every template parameter as `--name=value`; this maps them onto
`kappactl kappa run|backfill` so the template and the CLI stay one code path.
"""

from __future__ import annotations

import logging
import sys


def main(argv: list[str] | None = None) -> None:
    from migration.cli import main as kappactl

    args = list(sys.argv[1:] if argv is None else argv)
    command = "run"
    rest = []
    for arg in args:
        if arg.startswith("--command="):
            command = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    kappactl(["kappa", command, *rest])


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    main()
