"""Hand-written forms of two generated commands: ``messages add-batch`` (any number of messages
from a JSON Lines file, in chunks, with progress) and ``command-log export`` (to a file)."""

from __future__ import annotations

import json
from typing import Any

import click

from .output import emit, emit_json
from .remote import JsonParamType, build_command, call, common_options, payload_of


def _with_common(command: click.Command) -> click.Command:
    command.params.extend(common_options())
    return command


def add_batch_command(spec: dict[str, Any]) -> click.Command:
    """``messages add-batch [MESSAGES] [--file F.jsonl]``: any number of messages, in chunks."""

    @click.command(
        "add-batch",
        help=(
            f"{spec['summary']}\n\n{spec['description']}\n\n"
            "With --file, read JSON Lines (one message per line, any number): they are sent in "
            "chunks of --chunk-size with a progress bar on stderr; the exit status is 1 when "
            "any message was rejected (the summary lists them).\n\n"
            "Calls POST /messages/add_batch on the instance."
        ),
        short_help=spec["summary"],
    )
    @click.argument("messages", required=False, type=JsonParamType())
    @click.option("--file", "jsonl", type=click.File("r"), help="JSON Lines file, or - (stdin).")
    @click.option(
        "--chunk-size",
        type=click.IntRange(1),
        default=1000,
        show_default=True,
        help="Messages per call (at most the instance's batch cap).",
    )
    @click.option("--default-priority", default=None, help="Priority of messages that give none.")
    def command(
        messages: Any, jsonl: Any, chunk_size: int, default_priority: str | None, **opts: Any
    ) -> None:
        if (messages is None) == (jsonl is None):
            raise click.UsageError("give MESSAGES (JSON array, @file or -) or --file F.jsonl")
        extra = {"default_priority": default_priority} if default_priority else {}
        if messages is not None:
            result = call("POST", "/messages/add_batch", {"messages": messages, **extra}, opts)
            emit(result, as_json=opts["mp_json"], full=opts["mp_full"])
            if result.get("rejected"):
                click.get_current_context().exit(1)
            return
        _stream_batches(jsonl, chunk_size, extra, opts)

    return _with_common(command)


def _stream_batches(
    jsonl: Any, chunk_size: int, extra: dict[str, Any], opts: dict[str, Any]
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from .output import stderr_console

    queued = 0
    rejected: list[dict[str, Any]] = []
    chunk: list[Any] = []

    def flush(progress: Progress, task: Any) -> None:
        nonlocal queued
        if not chunk:
            return
        result = call("POST", "/messages/add_batch", {"messages": chunk, **extra}, opts)
        queued += result["queued"]
        rejected.extend(result["rejected"])
        progress.update(task, advance=len(chunk))
        chunk.clear()

    with Progress(
        TextColumn("queueing"),
        BarColumn(),
        MofNCompleteColumn(),
        console=stderr_console(),
        transient=True,
    ) as progress:
        task = progress.add_task("queue", total=None)
        for number, line in enumerate(jsonl, start=1):
            if not line.strip():
                continue
            try:
                chunk.append(json.loads(line))
            except ValueError as exc:
                raise click.UsageError(f"line {number} is not valid JSON: {exc}") from exc
            if len(chunk) >= chunk_size:
                flush(progress, task)
        flush(progress, task)
    summary = {"ok": not rejected, "queued": queued, "rejected": rejected}
    if opts["mp_json"]:
        emit_json(summary)
    else:
        click.echo(f"Queued {queued} messages; {len(rejected)} rejected.")
        if rejected:
            emit(rejected, as_json=False)
    if rejected:
        click.get_current_context().exit(1)


def export_command(spec: dict[str, Any]) -> click.Command:
    """``command-log export`` with ``--output FILE`` (JSON Lines, progress on stderr)."""
    generated = build_command(spec)
    generated.params.insert(
        0,
        click.Option(
            ["--output", "-o", "mp_output"],
            type=click.Path(dir_okay=False, writable=True),
            default=None,
            help="Write the entries to this file as JSON Lines instead of printing them.",
        ),
    )
    inner = generated.callback

    def callback(mp_output: str | None, **kwargs: Any) -> None:
        if mp_output is None:
            assert inner is not None
            inner(**kwargs)
            return
        entries = call("GET", spec["path"], payload_of(spec, kwargs), kwargs)
        with open(mp_output, "w", encoding="utf-8") as handle:
            for entry in entries:
                handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        click.echo(f"Wrote {len(entries)} entries to {mp_output}.", err=True)
        if kwargs["mp_json"]:
            emit_json({"ok": True, "written": len(entries), "file": mp_output})

    generated.callback = callback
    generated.help = (generated.help or "") + "\n\nWith --output, the entries go to a file."
    return generated
