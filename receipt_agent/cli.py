"""The `receipt-agent` command line (CONTRACT §1) and the one error presenter.

Exit codes: OK=0, FAILED=1 (the work failed), USAGE=2 (usage or configuration error).
Expected errors (ReceiptAgentError) print as operator sentences without a traceback;
anything else is a bug and prints with one. The only module that calls sys.exit.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

# Start-up (benchmarks/startup.py): `--version` and the argument parser load nothing more;
# a command imports logs (structlog, without rich: see logs.py), the config models,
# rich and its own modules when it runs.
from receipt_agent import __version__
from receipt_agent.errors import ConfigError, ReceiptAgentError, UsageError

if TYPE_CHECKING:
    from receipt_agent.config import AgentConfig

OK, FAILED, USAGE = 0, 1, 2
DEFAULT_HEALTH_AGE_S = 1800.0
DEFAULT_LIST_LIMIT = 1000


def parse_duration(value: str) -> float:
    """argparse type for durations: config.parse_duration, imported when a command needs it."""
    from receipt_agent.config import parse_duration as parse

    return parse(value)


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="receipt-agent",
        description="Gets every sale a store's tills export into Dintero, durably.",
    )
    version = f"receipt-agent {__version__}"
    parser.add_argument("--version", action="version", version=version)
    # CONTRACT §1: every command takes -c; also before the command (`receipt-agent -c F run`)
    # and a command group's action (`queue -c F list`), under their own dests (_config_of).
    parser.add_argument("-c", "--config", dest="global_config", help=argparse.SUPPRESS)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--version", action="version", version=version)  # `run --version` too
    common.add_argument(
        "-c", "--config", help="config file (default: $RECEIPT_AGENT_CONFIG, "
        "else /etc/receipt-agent/config.yaml)",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="the daemon (or one pass with --once)")
    run.add_argument("--once", action="store_true", help="take in ready files, send, exit")

    check = sub.add_parser("check-config", parents=[common], help="validate the config")
    check.add_argument(
        "--online", action="store_true",
        help="also fetch a token and make one read-only receipts call (names what fails)",
    )  # fmt: skip

    convert = sub.add_parser(
        "convert", parents=[common], help="show the Dintero receipts a till export maps to"
    )
    convert.add_argument(
        "--source", required=True, help="the source whose format and mapping to use"
    )
    convert.add_argument("file", type=Path)

    status = sub.add_parser("status", parents=[common], help="queue counts and health")
    status.add_argument("--json", action="store_true")
    status.add_argument(
        "--max-age", default=DEFAULT_HEALTH_AGE_S, type=parse_duration,
        help="degraded when the oldest pending receipt, or the last error, is younger/older "
        "than this (default 30m)",
    )  # fmt: skip

    queue = sub.add_parser("queue", help="inspect and act on the queue")
    queue.add_argument("-c", "--config", dest="group_config", help=argparse.SUPPRESS)
    queue_sub = queue.add_subparsers(dest="queue_command", required=True, metavar="ACTION")
    listing = queue_sub.add_parser("list", parents=[common], help="list receipts")
    listing.add_argument("--state", choices=["pending", "sent", "rejected"])
    listing.add_argument("--json", action="store_true")
    listing.add_argument(
        "--limit", type=_positive_int, default=DEFAULT_LIST_LIMIT,
        help=f"show at most this many receipts, newest first (default {DEFAULT_LIST_LIMIT})",
    )  # fmt: skip
    retry = queue_sub.add_parser("retry", parents=[common], help="move rejected back to pending")
    retry.add_argument("ids", nargs="*", type=int)
    retry.add_argument("--all-rejected", action="store_true")
    purge = queue_sub.add_parser("purge", parents=[common], help="delete old sent/rejected rows")
    purge.add_argument("--state", required=True, choices=["sent", "rejected"])
    purge.add_argument("--older-than", required=True, type=parse_duration)

    report = sub.add_parser("report", help="report generation")
    report.add_argument("-c", "--config", dest="group_config", help=argparse.SUPPRESS)
    report_sub = report.add_subparsers(dest="report_command", required=True, metavar="ACTION")
    generate = report_sub.add_parser("generate", parents=[common], help="run a report now")
    generate.add_argument("name")
    generate.add_argument("--period-start", help="YYYY-MM-DD: the period to report on")

    settlement = sub.add_parser("settlement", help="settlement reports")
    settlement.add_argument("-c", "--config", dest="group_config", help=argparse.SUPPRESS)
    settlement_sub = settlement.add_subparsers(
        dest="settlement_command", required=True, metavar="ACTION"
    )
    test_report = settlement_sub.add_parser(
        "test-report", parents=[common], help="ask Dintero for a test settlement report"
    )
    test_report.add_argument("--transaction-id", action="append", dest="transaction_ids")
    test_report.add_argument("--count", type=int)
    test_report.add_argument("--from", dest="date_from")
    test_report.add_argument("--to", dest="date_to")

    reconcile = sub.add_parser(
        "reconcile", parents=[common], help="prove a business day complete (CONTRACT §7)"
    )
    reconcile.add_argument("--date", type=_iso_date, help="YYYY-MM-DD (default: yesterday)")
    reconcile.add_argument("--source", help="one source (default: every source)")
    reconcile.add_argument("--remote", choices=["none", "sample", "all"], default="none")
    reconcile.add_argument("--json", action="store_true")

    demo = sub.add_parser(
        "demo", parents=[common], help="the whole pipeline against a local sandbox"
    )  # -c is accepted and not needed: the demo writes its own config
    demo.add_argument("--keep", action="store_true", help="keep the temporary folder")

    # Listed for --help only: main() hands `sandbox ...` to the sandbox before parsing.
    sub.add_parser(
        "sandbox", add_help=False, help="serve the sandbox API on 127.0.0.1 (--help for faults)"
    )
    return parser


def _iso_date(text: str) -> str:
    from datetime import date

    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError("not a date; write YYYY-MM-DD") from None


def _load(args: argparse.Namespace, *, configure_logs: bool = True) -> AgentConfig:
    from receipt_agent import logs
    from receipt_agent.config import load_config, resolve_config_path

    config = load_config(resolve_config_path(args.config))
    if configure_logs:
        try:
            logs.configure(file=config.log.file, format=config.log.format, level=config.log.level)
        except OSError as error:
            raise ConfigError(
                [("log.file", f"cannot open {config.log.file} ({error.strerror}); fix its folder")]
            ) from None
    return config


def _open_db(config: AgentConfig, *, readonly: bool) -> Any:
    from receipt_agent.statedb import StateDB

    return StateDB(config.db_path, readonly=readonly)


def cmd_run(args: argparse.Namespace) -> int:
    import structlog

    from receipt_agent import permissions
    from receipt_agent.agent import Agent
    from receipt_agent.config import resolve_client_secret, resolve_config_path

    config = _load(args)
    from receipt_agent import preflight

    # As the user it runs as, before anything is taken in: exit 2, never a traceback.
    if problems := preflight.run_problems(config, once=args.once):
        raise ConfigError(problems)
    secret, warnings = resolve_client_secret(config.dintero)
    warnings += permissions.tighten_state(config)  # others lose access at start (CONTRACT §3)
    log = structlog.get_logger("receipt_agent")
    for warning in warnings:
        log.warning("config.warning", error=warning)
    # /health reads the running config: after a SIGHUP reload, the sources it has now.
    agent = Agent(
        config, secret, health=lambda: _health(agent.config),
        config_path=resolve_config_path(args.config),
    )  # fmt: skip
    if args.once:
        code = _run_once(agent)
        if agent.once_summary is not None:
            print(agent.once_summary.line())
    else:
        code = agent.run()
    if not agent.drained:
        # The one forced exit. A thread is still inside I/O past the drain bound or a
        # second signal (a POST that never returns); what it holds is pending in the
        # committed state store. Exit now rather than let the interpreter join that thread
        # for the whole client timeout, which kept the process alive past DRAIN_TIMEOUT_S
        # (found by tests/reliability/test_shutdown.py).
        sys.stdout.flush()
        logging.shutdown()
        os._exit(code)
    return code


def _run_once(agent: Any) -> int:
    """`run --once`, with a progress bar on stderr when that is a terminal (CONTRACT §1).

    The bar follows the pass's live counts (the summary line's text) from a thread; the
    `run_once` stays on the main thread (it installs the signal handlers there). Transient: only
    the summary line stays on screen. Not a terminal (cron, tests): no bar at all.
    """
    if not sys.stderr.isatty():
        return int(agent.run_once())
    import threading

    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    done = threading.Event()
    bar = Progress(SpinnerColumn(), BarColumn(), TextColumn("{task.description}"),
                   console=Console(stderr=True), transient=True)  # fmt: skip
    task = bar.add_task("starting", total=None)

    def follow() -> None:
        while not done.wait(0.2):
            if agent.once_summary is not None:
                bar.update(task, description=agent.once_summary.line())

    with bar:
        follower = threading.Thread(target=follow, name="progress", daemon=True)
        follower.start()
        try:
            return int(agent.run_once())
        finally:
            done.set()
            follower.join()


def _health(config: AgentConfig) -> tuple[bool, dict[str, Any]]:
    """GET /health on the metrics listener: `status`'s verdict as a small JSON document."""
    from receipt_agent import status

    db = _open_db(config, readonly=True)
    try:
        # With the config, as `status` does: spools, quarantine, rejections count too.
        report = status.build_status(db, max_age_s=DEFAULT_HEALTH_AGE_S, config=config)
    finally:
        db.close()
    return report.healthy, {
        "status": "healthy" if report.healthy else "degraded",
        "problems": report.problems,
        "pending": report.counts.get("pending", 0),
        "oldest_pending_age_s": report.oldest_pending_age_s,
        "last_success_at": report.last_success_at,
    }


def cmd_check_config(args: argparse.Namespace) -> int:
    from receipt_agent.config import resolve_client_secret, resolve_config_path
    from receipt_agent.config.check import collect_problems

    config, problems, warnings = collect_problems(resolve_config_path(args.config))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if config is None or problems:
        raise ConfigError(problems)
    if args.online:
        from receipt_agent import logs
        from receipt_agent.online_check import check_online

        # The check names the failing layer itself: the client's own `auth.failed` line
        # (and the presenter's `config.invalid`) would say it a second time.
        logs.configure(file="-", format="console", level="critical")
        secret, _ = resolve_client_secret(config.dintero)
        passed, online_warnings = check_online(config.dintero, secret)
        for line in passed:
            print(f"online ok: {line}")
        for warning in online_warnings:
            print(f"warning: {warning}", file=sys.stderr)
    print("config ok")
    return OK


def cmd_convert(args: argparse.Namespace) -> int:
    from receipt_agent.formats import InvalidRecord, RawReceipt, SkippedRecord, get_parser
    from receipt_agent.intake import open_safely
    from receipt_agent.mapping import ValidReceipt, finish_receipt

    config = _load(args, configure_logs=False)
    source = config.source(_known(args.source, [s.name for s in config.sources], "--source"))
    receipts: list[bytes] = []
    problems = skipped = 0
    try:
        stream = open_safely(args.file, source.size_limit_bytes)
    except OSError as unreadable:
        raise UsageError(f"{args.file}: cannot read it ({unreadable.strerror})") from None
    with stream:
        for record in get_parser(source.format_name)(stream, source):
            if isinstance(record, SkippedRecord):
                skipped += 1
                print(f"skipped ({record.reason}): {record.location}", file=sys.stderr)
                continue
            finished = finish_receipt(record, source) if isinstance(record, RawReceipt) else record
            if isinstance(finished, ValidReceipt):
                receipts.append(finished.payload)
            elif isinstance(finished, InvalidRecord):
                problems += 1
                who = f"{finished.store_id or source.store.id}/{finished.receipt_id or '?'}"
                print(f"invalid {who} at {finished.location or args.file.name}:", file=sys.stderr)
                for error in finished.errors:
                    print(f"  {error}", file=sys.stderr)
    body = orjson.loads(b"[" + b",".join(receipts) + b"]")
    sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(f"{len(receipts)} receipts, {problems} invalid, {skipped} skipped", file=sys.stderr)
    return OK if problems == 0 else FAILED


def cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console

    from receipt_agent import status

    config = _load(args, configure_logs=False)
    db = _open_db(config, readonly=True)
    report = status.build_status(db, max_age_s=args.max_age, config=config)
    if args.json:
        print(orjson.dumps(status.status_json(report), option=orjson.OPT_INDENT_2).decode())
    else:
        status.print_status(report, Console())
    return OK if report.healthy else FAILED


def cmd_queue(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from rich.console import Console

    from receipt_agent import status

    config = _load(args, configure_logs=False)
    if args.queue_command == "list":
        # One row more than asked tells whether the listing stops short of the queue.
        rows = _open_db(config, readonly=True).list_receipts(state=args.state, limit=args.limit + 1)
        more, rows = len(rows) > args.limit, rows[: args.limit]
        if args.json:
            print(orjson.dumps([asdict(row) for row in rows], option=orjson.OPT_INDENT_2).decode())
        else:
            status.print_queue(rows, Console())
        if more:
            print(
                f"showing the newest {args.limit} receipts; there are more "
                "(raise --limit, or narrow with --state)",
                file=sys.stderr,
            )
        return OK
    db = _open_db(config, readonly=False)
    if args.queue_command == "retry":
        if bool(args.ids) == args.all_rejected:  # CONTRACT §1: [ID…|--all-rejected]
            raise UsageError(
                "queue retry: name receipt ids (from `queue list`) or give --all-rejected, not both"
            )
        moved = db.retry(None if args.all_rejected else args.ids, now=time.time())
        print(f"{moved} receipts moved back to pending")
        if moved == 0:
            print(
                "receipts rejected at intake (invalid in the export) cannot be retried; "
                "fix the export and drop the file in the source folder again",
                file=sys.stderr,
            )
        return OK
    removed = db.purge(state=args.state, older_than=time.time() - args.older_than)
    print(f"{removed} {args.state} receipts purged")
    return OK


def cmd_report(args: argparse.Namespace) -> int:
    from receipt_agent.reports.runner import generate_report

    config = _load(args)
    _known(args.name, [report.name for report in config.reports], "report")
    outcome = generate_report(config, args.name, args.period_start)
    if outcome.skipped:
        print(
            f"report {args.name}: period {outcome.period_start} was already written to "
            f"{outcome.file}; nothing to do"
        )
    else:
        print(
            f"report {args.name}: wrote {outcome.file} "
            f"({outcome.bytes} bytes, HTTP {outcome.status})"
        )
    return OK


def cmd_settlement(args: argparse.Namespace) -> int:
    from receipt_agent.reports.settlement import run_test_report

    config = _load(args)
    message = run_test_report(
        config,
        transaction_ids=args.transaction_ids,
        count=args.count,
        date_from=args.date_from,
        date_to=args.date_to,
    )
    print(message)  # the API's words, for created (201) and nothing to report (200)
    return OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    from rich.console import Console

    from receipt_agent import reconcile, reconcile_view

    config = _load(args, configure_logs=False)
    if args.source is not None:
        _known(args.source, [source.name for source in config.sources], "--source")
    db = _open_db(config, readonly=False)
    client = None
    if args.remote != "none":
        from receipt_agent.api import open_client

        client = open_client(config.dintero)
    try:
        runner = reconcile.Reconciler(config, db, client)
        results = runner.run(date=args.date, source=args.source, remote=args.remote)
    finally:
        if client is not None:
            client.close()
    reconcile.record(db, results)
    if args.json:
        print(reconcile_view.results_json(results))
    else:
        reconcile_view.print_results(results, Console())
    return OK if all(result["result"] == "complete" for result in results) else FAILED


def cmd_demo(args: argparse.Namespace) -> int:
    from receipt_agent import demo

    return demo.run_demo(keep=args.keep)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "check-config": cmd_check_config,
    "convert": cmd_convert,
    "status": cmd_status,
    "queue": cmd_queue,
    "report": cmd_report,
    "settlement": cmd_settlement,
    "reconcile": cmd_reconcile,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: parse, dispatch, present errors, exit with a named code."""
    raw = list(sys.argv[1:] if argv is None else argv)
    if _without_config(raw)[:1] == ["sandbox"]:
        # The sandbox owns its flags (port, credentials, every fault switch); it needs no
        # config, so a -c given to it (CONTRACT §1: every command takes one) is dropped.
        from receipt_agent.sandbox.__main__ import main as sandbox_main

        sys.exit(sandbox_main(_without_config(raw)[1:], prog="receipt-agent sandbox"))
    args = _build_parser().parse_args(raw)
    args.config = _config_of(args)
    from receipt_agent import logs

    # Until the config names a log file, warnings and errors go to stderr (STYLE §5).
    logs.configure(file="-", format="console", level="warning")
    try:
        code = _dispatch(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`queue list --json | head`): not an error of ours. Point
        # stdout at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = FAILED
    sys.exit(code)


def _known(name: str, names: list[str], option: str) -> str:
    """Given a name from the command line, return it when the config has it; else UsageError."""
    if name not in names:
        raise UsageError(
            f"{option}: no {option.lstrip('-')} named {name!r} in the config; "
            f"it has: {', '.join(names) or 'none'}"
        )
    return name


def _without_config(raw: list[str]) -> list[str]:
    """Given the command line, return it without its `-c PATH` / `--config[=]PATH` options."""
    out: list[str] = []
    skip = False
    for arg in raw:
        if skip:
            skip = False
        elif arg in ("-c", "--config"):
            skip = True
        elif not arg.startswith(("--config=", "-c")):  # `-cPATH` too: no sandbox flag is `-c…`
            out.append(arg)
    return out


def _config_of(args: argparse.Namespace) -> str | None:
    """The -c given after the command wins over one before its action or before it."""
    for name in ("config", "group_config", "global_config"):
        value = getattr(args, name, None)
        if value:
            return str(value)
    return None


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return _COMMANDS[args.command](args)
    except UsageError as error:
        print(f"receipt-agent: error: {error}", file=sys.stderr)  # never logged: not a fault
        return USAGE
    except ConfigError as error:
        for path, message in error.problems:
            print(f"{path}: {message}", file=sys.stderr)
        # Problems of the command line (`--count: …`) are not a config fault: never logged.
        if not all(path.startswith("--") for path, _ in error.problems):
            import structlog

            structlog.get_logger("receipt_agent").error(
                "config.invalid", problems=len(error.problems)
            )
        return USAGE
    except ReceiptAgentError as error:
        print(f"error: {error}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        return FAILED
