"""`logpath ingest`, `logpath hops` and `logpath rejected`: fill the store and look at its hops."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from logpath.cli.app import (
    CsvOption,
    ExitStatus,
    HostOption,
    JsonOption,
    PortOption,
    SchedulerOption,
    SinceOption,
    StoreOption,
    UntilOption,
    command,
    exit_when_nothing_matched,
    scheduler_address,
    stopped_by_signals,
)
from logpath.errors import RulesetError, UsageError
from logpath.render.output import visible, visible_lines

# The library (pandas, Arrow, rich) is imported by the command that runs (see logpath.cli.flows).
if TYPE_CHECKING:
    import pyarrow as pa
    from rich.console import Console

    from logpath.ingest import Parsing


@command("ingest")
def ingest_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Log files (syslog, kern.log, journal exports, dmesg); - reads standard input."
        ),
    ],
    store: StoreOption = None,
    as_json: JsonOption = False,
    year: Annotated[
        int | None,
        typer.Option(
            "--year",
            help="Year of timestamps that carry none (RFC 3164); default: the file's mtime.",
        ),
    ] = None,
    rules: Annotated[
        str | None,
        typer.Option(
            "--rules",
            help="A ruleset (iptables-save or nft list ruleset output) to keep with the hops.",
        ),
    ] = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Read netfilter LOG lines into the hop store.

    Exit code 1 when an input could not be read (the others' lines are stored).

    Exit code 5 when new lines were read but none gave a hop.

    Example: logpath ingest /var/log/syslog /var/log/syslog.1
    """
    from logpath.runtime import parsed_in_workers, start_worker_server, stop_worker_server

    try:
        # a stop while the workers' server starts and this process imports is a stop of the
        # run (as during the ingest), not a KeyboardInterrupt
        with stopped_by_signals():
            if scheduler_address(scheduler) is None and parsed_in_workers(paths):
                # before this process imports pandas, pyarrow and the pipeline (~0.7 CPU-s):
                # the server imports them on the other core meanwhile (runtime.worker_context)
                start_worker_server()
            import logpath.ingest  # noqa: F401  (what _ingest_command imports, imported here)
        _ingest_command(paths, store, as_json, year, rules, scheduler)
    finally:
        stop_worker_server()  # when ingest never started its workers (a store refused, say)


def _ingest_command(
    paths: list[str],
    store: str | None,
    as_json: bool,
    year: int | None,
    rules: str | None,
    scheduler: str | None,
) -> None:
    from rich.console import Console

    # the parser builds its grammars on import (~50 ms): only this command needs them
    from logpath.ingest import ingest
    from logpath.parse import SCANNER_NOT_BUILT
    from logpath.render.tables import print_summary
    from logpath.runtime import ingest_allocators
    from logpath.store import Store

    target = Store(store)
    ruleset = rules_option(rules) if rules else None
    console = Console(stderr=True)
    ingest_allocators()
    with (
        stopped_by_signals(),
        _on_cluster(scheduler) as parsing,
        _progress(console, enabled=not as_json and console.is_terminal) as report,
    ):
        summary = ingest(
            paths, target, year=year, ruleset=ruleset, progress=report, parsing=parsing
        )
    if summary.scanner_missing:  # said once a run: the user can fix it (a compiler, a reinstall)
        typer.echo(f"logpath: {SCANNER_NOT_BUILT}", err=True)
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=1))
    elif summary.files:  # else no input could be opened: the store was not touched
        print_summary(Console(), summary, target.path)
    for error in summary.errors:
        typer.echo(f"logpath: {visible_lines(str(error))}", err=True)
    if summary.errors:
        raise typer.Exit(ExitStatus.ERROR)
    if summary.lines and not summary.hops:
        typer.echo(
            f"logpath: {summary.lines:,} new line(s) read, no hop stored: "
            + (
                f"all {summary.rejected:,} netfilter line(s) rejected (`logpath rejected` says why)"
                if summary.rejected
                else "none is a netfilter LOG line"
            ),
            err=True,
        )
        raise typer.Exit(ExitStatus.NOTHING_PARSED)


@contextmanager
def _on_cluster(scheduler: str | None) -> Iterator[Parsing | None]:
    """The cluster's workers ingest parses on (``logpath.fleet``), or None: this machine's
    processes, and dask not imported."""
    address = scheduler_address(scheduler)
    if address is None:
        yield None
        return
    from logpath.fleet import connected

    with connected(address) as cluster:
        yield cluster.parsing()


def rules_option(path: str) -> dict[str, object]:
    """The ruleset of ``--rules PATH`` as the manifest keeps it (a RulesetError if unreadable)."""
    try:
        from logpath.rules import load_ruleset
    except ImportError as error:  # pragma: no cover - the rules module ships with logpath
        raise RulesetError(f"{path}: rulesets cannot be read by this build ({error})") from None
    ruleset = load_ruleset(path)
    data: dict[str, object] = ruleset.to_json()
    return data


class _progress:
    """A progress bar on a terminal (big inputs), nothing otherwise; a file's name is shown
    ``visible`` and not read as rich markup."""

    def __init__(self, console: Console, enabled: bool) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        self.enabled = enabled
        self.bar = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.completed:,} lines"),
            console=console,
            transient=True,
        )
        self.tasks: dict[str, object] = {}

    def __enter__(self) -> _progress | None:
        if not self.enabled:
            return None
        self.bar.start()
        return self

    def __call__(self, name: str, lines: int) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(visible(name), total=None)
        self.bar.update(self.tasks[name], completed=lines)  # type: ignore[arg-type]

    def __exit__(self, *args: object) -> None:
        if self.enabled:
            self.bar.stop()


@command("hops")
def hops_command(
    store: StoreOption = None,
    port: PortOption = None,
    host: HostOption = None,
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="Only hops whose LOG prefix contains this text.")
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
    everything: Annotated[
        bool, typer.Option("--all", help="Show the table even of more than 300,000 hops.")
    ] = False,
) -> None:
    """Stored hops, one per log line, with their flow and hook.

    Exit code 1 when no hop matched (as grep).

    Example: logpath hops --port 12580 --json
    """
    import pyarrow as pa
    from rich.console import Console

    from logpath.query import HopPlaces
    from logpath.render.tables import print_hops
    from logpath.store import Store, hop_filter, to_frame

    if as_json and as_csv:
        raise UsageError("--json and --csv cannot be used together")
    chosen = hop_filter(port=port, host=host, prefix=prefix, since=since, until=until)
    hops = Store(store)
    if chosen is not None and chosen.networks:
        chosen = chosen.with_addresses(hops.addresses())
    selected = None if chosen is None else chosen.expression()
    # each hop with its connection, packet, table, chain and hook, as assembly placed it
    places = HopPlaces(hops)
    if as_json or as_csv:
        # written batch by batch: memory stays flat however many hops the store holds
        # (read whole, 1.2 million hops took 9 GB as JSON)
        write = _write_json if as_json else _write_csv
        written = [0]  # the hops written, counted batch by batch

        def counted(batch: pa.RecordBatch) -> pa.Table:
            written[0] += batch.num_rows
            return places.beside(pa.Table.from_batches([batch]))

        write(counted(b) for b in hops.hop_batches(filter_=selected))
        exit_when_nothing_matched(written[0])
        return
    count = hops.count_hops(selected)
    if count > TABLE_HOPS and not everything:
        raise UsageError(
            f"{count:,} hops match: too many to read as a table\n\nNarrow them with --port, "
            "--host, --prefix, --since or --until, write them with --csv or --json, or pass "
            "--all."
        )
    print_hops(Console(), to_frame(places.beside(hops.read_table(selected))))
    exit_when_nothing_matched(count)


# Beyond this many hops, the table (read whole to line its columns up) needs --all.
TABLE_HOPS = 300_000


def _write_json(tables: Iterator[pa.Table]) -> None:
    """The hops as one JSON array, one hop per line, as hops_to_json writes them (json escapes
    every control character: the exact text, safe on a terminal)."""
    from logpath.hops import hop_to_json, json_array_parts
    from logpath.rowgroups import python_rows

    # rows straight from Arrow: through pandas (object columns, NaN to None) took half the time
    records = (hop_to_json(row) for table in tables for row in python_rows(table))
    sys.stdout.writelines(json_array_parts(records))
    sys.stdout.write("\n")


def _write_csv(tables: Iterator[pa.Table]) -> None:
    """The hops as CSV, the header once (every column but the raw line), each text cell made
    safe for a terminal and a spreadsheet by ``csv_columns``, in the JSON's words: ``in`` and
    ``out`` (the table's ``in_iface``, ``out_iface``) and its times (``iso_times``)."""
    from logpath.hops import HOP_SCHEMA
    from logpath.query import PLACE_COLUMNS
    from logpath.render.output import csv_columns, iso_times
    from logpath.store import to_frame

    header = True
    for table in tables:
        table = table.drop_columns(["raw"])
        table = table.set_column(table.column_names.index("ts"), "ts", iso_times(table["ts"]))
        frame = to_frame(csv_columns(table.rename_columns(_csv_names(table.column_names))))
        frame.to_csv(sys.stdout, index=False, header=header)
        header = False
    if header:  # no hop: the header alone
        names = [*(c for c in HOP_SCHEMA.names if c != "raw"), *PLACE_COLUMNS]
        sys.stdout.write(",".join(_csv_names(names)) + "\n")


def _csv_names(columns: Iterable[str]) -> list[str]:
    """The hop table's column names as the JSON says them (``in_iface`` is ``in``)."""
    from logpath.hops import _JSON_NAMES  # the one place the JSON renames a column

    return [_JSON_NAMES.get(name, name) for name in columns]


@command("rejected")
def rejected_command(
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the netfilter-like lines that did not parse, and why.

    Example: logpath rejected --store ./store
    """
    from rich.console import Console

    from logpath.render.tables import print_rejected
    from logpath.store import Store

    rejected = Store(store).read_rejected()
    if as_json:
        typer.echo(rejected.to_json(orient="records", indent=1))
    else:
        print_rejected(Console(), rejected)


__all__ = ["hops_command", "ingest_command", "rejected_command"]
