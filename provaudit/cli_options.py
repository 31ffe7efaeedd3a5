"""Click options of the commands that run tasks (kept beside cli.py, which parses and prints)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from provaudit.fs.urls import is_url
from provaudit.index.partition import MAX_PARTITIONS
from provaudit.run.engines import ENGINES


class Location(click.ParamType[Any]):
    """A local path (a ``Path``) or a URL (``s3://``, ``gs://``, ``file://``: kept as the string,
    which ``Path`` would mangle)."""

    name = "path|url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Path) or not is_url(value):
            return Path(value)
        return str(value)


LOCATION = Location()


def workers_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """-w/--workers, --engine and --ray-address (a ``RunEngine``)."""
    f = click.option("--ray-address", metavar="auto|HOST:PORT|ray://HOST:PORT",
                     help="With --engine ray: the Ray cluster to run on (default: a local Ray instance started "
                          "for the run).")(f)
    f = click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
                     help="Where the tasks run: this machine, or a Ray cluster (pip install 'provaudit[ray]'). "
                          "Results are identical.")(f)
    return click.option("-w", "--workers", type=click.IntRange(1, 4096), default=None,
                        help="Worker processes (default: all cores), or Ray actors with --engine ray (default: "
                             "every CPU of the cluster). Results are identical for any value.")(f)


def partitions_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--partitions (``RunEngine.partitions``): key-range partitioned anchor lookups on Ray."""
    return click.option("--partitions", type=click.IntRange(1, MAX_PARTITIONS), default=None, metavar="P",
                        help="With --engine ray: P range actors each hold one key range of the index and answer "
                             "the anchor lookups of its keys (each target shingle looked up once, in one range), "
                             "so the index's anchor tables spread over the cluster's nodes. Results are identical.")(f)


__all__ = ["LOCATION", "Location", "partitions_option", "workers_option"]
