"""Every example of README.md and docs/*.md runs as written against the real service.

For each page, a real ``mail-proxy serve`` is started (a subprocess on a free loopback port, SQLite,
dispatcher running, every installed plugin) next to an aiosmtpd sink, with a fresh working
directory and ``HOME``. Then each fenced block of the page is taken in order:

* ``sh`` — run by bash with ``set -e`` in the page's working directory. ``curl`` fails on an HTTP
  error status (``--fail-with-body``), so every call must succeed, except one followed by a
  comment showing the error it answers (``# 403 ...``, ``# {"code": ...}``), which must fail;
  ``mail-proxy`` is the installed command. ``MP``/``U`` (the base URL), ``MAILPROXY_URL``,
  ``MAILPROXY_API_TOKEN``, ``H`` and ``ADMIN`` (the admin token header) are set beforehand, as
  the pages ask the reader to.
* ``console`` — each ``$ <command>`` line is run the same way; when the output the page shows
  starts with ``Error:``, the command must fail and print that error, otherwise it must succeed.
* ``python`` — run by the project's Python in a subprocess (top-level ``await`` allowed).
* ``json`` — parsed; ``toml`` — parsed.
* ``text`` — not an example (output, diagrams, formats).

Examples written for the reader's set-up are run with ``SUBSTITUTIONS`` applied: the documented
address ``127.0.0.1:8000`` becomes the test service's, placeholders such as ``<the admin token>``
become the token, the relay port 25 becomes the sink's. A placeholder not listed fails the test.

A block marked ``<!-- example: named-instance -->`` runs without ``MAILPROXY_URL``, so that its
commands reach the selected named instance, as the page describes (``MAILPROXY_API_TOKEN`` stays
exported, as in the reader's shell after the README's quickstart).
The files the examples name as the reader's own (``report.eml``, ``hello.json``,
``invoices.jsonl``) are written to the working directory first (``READER_FILES``), and a page
whose examples assume some state gets it from ``PAGE_SETUP``.

A block that cannot run here is marked right before it with
``<!-- example: not-run (<reason>) -->``: it is still parsed (compiled, for Python; ``bash -n``
for shell) and is counted and listed, never silently skipped. ``hooks.md`` (generated) marks all
its blocks at once with ``<!-- examples: compile-only (<reason>) -->``: fragments of hook
implementations that are compiled. Every fenced block must have a language.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink

from mailproxy_core.testing.live import free_port

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token")

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
TOKEN = "docs-examples-admin-token"
DOCUMENTED_ADDRESS = "127.0.0.1:8000"
LANGUAGES = {"sh", "console", "python", "json", "toml", "text"}
NOT_RUN = re.compile(r"<!-- example: not-run \((.+?)\) -->\s*$")
NAMED = "<!-- example: named-instance -->"
COMPILE_ONLY = re.compile(r"<!-- examples: compile-only \((.+?)\) -->")
FENCE = re.compile(r"^( *)```(\S*)\s*$")
TIMEOUT = 60


@dataclass(frozen=True)
class Block:
    """One fenced block of a page."""

    page: str
    line: int
    language: str
    text: str
    not_run: str | None
    """The reason given in a ``not-run`` marker, or ``None``."""
    named_instance: bool = False
    """Marked ``named-instance``: commands reach the selected named instance."""

    def __str__(self) -> str:
        return f"{self.page}:{self.line} [{self.language}]"


def blocks_of(page: Path) -> list[Block]:
    """The fenced blocks of ``page`` with their markers."""
    lines = page.read_text().split("\n")
    compile_only = COMPILE_ONLY.search(page.read_text())
    name = str(page.relative_to(ROOT))
    found: list[Block] = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent = match.group(1)
        end = index + 1
        while not lines[end].startswith(indent + "```"):
            end += 1
        previous = next((line for line in reversed(lines[:index]) if line.strip()), "")
        marker = NOT_RUN.search(previous)
        reason = marker.group(1) if marker else None
        if compile_only and reason is None:
            reason = compile_only.group(1)
        text = "\n".join(line.removeprefix(indent) for line in lines[index + 1 : end])
        named = previous.strip() == NAMED
        found.append(Block(name, index + 1, match.group(2), text, reason, named))
        index = end + 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]


@dataclass
class Service:
    """A running ``mail-proxy serve`` and what the examples are run with."""

    url: str
    cwd: Path
    env: dict[str, str]
    smtp_port: int
    sink: Sink

    def substitutions(self) -> dict[str, str]:
        """Text replaced in every example before it runs (see the module docstring)."""
        address = self.url.removeprefix("http://")
        return {
            DOCUMENTED_ADDRESS: address,
            "localhost:8000": address,
            "<the printed token>": TOKEN,
            "<the admin token>": TOKEN,
            "<admin token or tenant key>": TOKEN,
            '"port": 25,': f'"port": {self.smtp_port},',
        }

    def prepare(self, text: str) -> str:
        for documented, actual in self.substitutions().items():
            text = text.replace(documented, actual)
        return text


DOCUMENTED_ERROR = re.compile(r'^#\s*(?:[45]\d\d\b|\{"(?:code|detail)": )')
"""A comment line showing the HTTP error the command above it answers: ``# 403 {...}`` or an
error body ``# {"code": ...}``."""


def expect_documented_errors(script: str) -> str:
    """``script`` where a command followed by a ``# 4xx``/``# 5xx`` comment must fail with an
    HTTP error (curl's exit status 22) instead of stopping the script."""
    lines = script.split("\n")
    for index in range(len(lines) - 1):
        if DOCUMENTED_ERROR.match(lines[index + 1].strip()) and lines[index].strip():
            lines[index] += " && unexpected_success || [ $? -eq 22 ]"
    return "\n".join(lines)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """``mail-proxy serve`` (not in test mode: the dispatcher sends) with an SMTP sink."""
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    port = free_port()
    cwd = tmp_path / "work"
    cwd.mkdir()
    url = f"http://127.0.0.1:{port}"
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        "MAILPROXY_DB": str(cwd / "mailproxy.db"),
        "MAILPROXY_API_TOKEN": TOKEN,
        "MAILPROXY_HOST": "127.0.0.1",
        "MAILPROXY_PORT": str(port),
        "MAILPROXY_LOG_LEVEL": "WARNING",
        # as api.md asks for its storage example
        "MAILPROXY_STORAGE_LOCAL__ALLOWED_ROOTS": "/srv",
        "MAILPROXY_URL": url,
        "MP": url,
        "U": url,
        "H": f"X-API-Token: {TOKEN}",
        "ADMIN": f"X-API-Token: {TOKEN}",
    }
    (tmp_path / "home").mkdir()
    process = subprocess.Popen(
        [str(BIN / "mail-proxy"), "serve"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mail-proxy serve exited: {process.stderr.read()!r}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mail-proxy serve did not come up")
            time.sleep(0.1)
        yield Service(url, cwd, env, controller.port, sink)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        controller.stop()
        _stop_named_instances(env)


def _stop_named_instances(env: dict[str, str]) -> None:
    """Stop the named instances an example started under the test's ``HOME``."""
    instances = Path(env["HOME"]) / ".mail-proxy"
    if not instances.is_dir():
        return
    for directory in instances.iterdir():
        if (directory / "server.pid").exists():
            subprocess.run(
                ["mail-proxy", "stop", directory.name],
                env=env,
                capture_output=True,
                timeout=TIMEOUT,
            )


SHELL_PRELUDE = """\
set -e
curl() {
    local status=0
    command curl --silent --show-error --fail-with-body "$@" || status=$?
    echo
    return $status
}
unexpected_success() { echo "the page shows an HTTP error here" >&2; return 1; }
"""


def run_shell(
    service: Service, script: str, typed: str = "", *, named_instance: bool = False
) -> subprocess.CompletedProcess[str]:
    """``script`` run by bash in the page's directory; ``typed`` is its standard input."""
    env = dict(service.env)
    if named_instance:
        # MAILPROXY_API_TOKEN stays exported, as after the README's quickstart: it belongs to
        # the service, and must not keep a named instance's commands from working
        del env["MAILPROXY_URL"]
    return subprocess.run(
        ["bash", "-c", SHELL_PRELUDE + script],
        input=typed,
        cwd=service.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


PYTHON_RUNNER = """\
import ast, asyncio, sys, types
source = sys.stdin.read()
code = compile(source, "<example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
namespace = {"__name__": "docs_example"}
result = eval(code, namespace)
if isinstance(result, types.CoroutineType):
    asyncio.run(result)
"""


PLACEHOLDER = re.compile(r"<(?:[a-z]+(?: [a-z]+)+|token)>")
"""``<the admin token>``, ``<token>``: text the reader replaces (an HTML tag is not one)."""


def unknown_placeholders(text: str) -> list[str]:
    """Placeholders left in a shell or Python example after substitution (comments aside)."""
    code = "\n".join(line for line in text.split("\n") if not line.lstrip().startswith("#"))
    return PLACEHOLDER.findall(code)


def check_shell_syntax(block: Block, script: str) -> None:
    syntax = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert syntax.returncode == 0, f"{block}: not valid shell: {syntax.stderr}"


def check_block(block: Block, service: Service | None) -> str:
    """Run (or parse) one block; returns what was done. Fails the test on a wrong example."""
    text = block.text
    if block.language == "json":
        json.loads(text)
        return "parsed"
    if block.language == "toml":
        tomllib.loads(text)
        return "parsed"
    if block.language == "text":
        return "text"
    if block.language == "python":
        compile(text, str(block), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        if block.not_run:
            return "not-run"
        assert service is not None
        code = service.prepare(text)
        assert not unknown_placeholders(code), f"{block}: {unknown_placeholders(code)}"
        done = subprocess.run(
            [sys.executable, "-c", PYTHON_RUNNER],
            input=code,
            cwd=service.cwd,
            env=service.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert done.returncode == 0, f"{block} failed:\n{done.stdout}\n{done.stderr}"
        return "run"
    if block.language == "sh":
        if block.not_run:
            check_shell_syntax(block, PLACEHOLDER.sub("placeholder", text))
            return "not-run"
        assert service is not None
        script = expect_documented_errors(service.prepare(text))
        assert not unknown_placeholders(script), f"{block}: {unknown_placeholders(script)}"
        check_shell_syntax(block, script)
        done = run_shell(service, script, named_instance=block.named_instance)
        assert done.returncode == 0, f"{block} failed:\n{done.stdout}\n{done.stderr}"
        return "run"
    if block.language == "console":
        commands = console_commands(block.text)
        assert commands, f"{block}: a console block without a `$ ` command"
        if block.not_run:
            return "not-run"
        assert service is not None
        status = 0
        for position, (command, output) in enumerate(commands):
            if command.strip() == "echo $?":
                assert output and str(status) == output[0].strip(), (
                    f"{block}: the command before `echo $?` exited {status}, not {output}"
                )
                continue
            typed = "".join(line[4:] + "\n" for line in output if line.startswith(">>> "))
            done = run_shell(
                service, service.prepare(command), typed, named_instance=block.named_instance
            )
            status = done.returncode
            shown = "\n".join(output)
            following = commands[position + 1][0].strip() if position + 1 < len(commands) else ""
            if output and output[0].startswith("Error:"):
                assert output[0] in done.stdout + done.stderr, (
                    f"{block}: `{command}` printed\n{done.stderr}\nnot\n{output[0]}"
                )
            if following == "echo $?":
                pass  # the exit status is checked by the `echo $?` that follows
            elif output and output[0].startswith("Error:"):
                assert done.returncode != 0, f"{block}: `{command}` should fail:\n{done.stdout}"
            else:
                assert done.returncode == 0, (
                    f"{block}: `{command}` failed:\n{done.stdout}\n{done.stderr}\n"
                    f"(the page shows:\n{shown})"
                )
        return "run"
    raise AssertionError(f"{block}: unknown language {block.language!r}; use one of {LANGUAGES}")


def console_commands(text: str) -> list[tuple[str, list[str]]]:
    """``(command, output lines shown after it)`` for each ``$ `` line of a console block."""
    commands: list[tuple[str, list[str]]] = []
    for line in text.split("\n"):
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands:
            commands[-1][1].append(line)
    return commands


def test_every_block_has_a_known_language_and_markers_have_reasons() -> None:
    unknown = [str(block) for block in ALL_BLOCKS if block.language not in LANGUAGES]
    assert not unknown, f"fenced blocks without a known language: {unknown}"
    for page in PAGES:
        text = page.read_text()
        markers = re.findall(r"<!-- examples?: [^>]*-->", text)
        for marker in markers:
            known = NOT_RUN.search(marker) or COMPILE_ONLY.search(marker) or marker == NAMED
            assert known, (page, marker)


def _message(message_id: str, account_id: str = "main") -> dict[str, str]:
    return {
        "id": message_id,
        "tenant_id": "acme",
        "account_id": account_id,
        "from": "billing@acme.example",
        "to": "ann@example.com",
        "subject": f"Invoice {message_id}",
        "body": "See attached.",
    }


READER_FILES: dict[str, dict[str, str]] = {
    "*": {
        "report.eml": "From: Shop <shop@acme.example>\r\nTo: bob@example.com\r\n"
        "Subject: Monthly report\r\n\r\nThe report.\r\n",
        "hello.json": json.dumps({**_message("hello-1"), "subject": "Hello"}),
        "invoices.jsonl": "\n".join(json.dumps(_message(f"inv-{n}")) for n in (1, 2)) + "\n",
    },
    # the page shows one entry rejected for an unknown account
    "cli.md": {
        "invoices.jsonl": json.dumps(_message("inv-1"))
        + "\n"
        + json.dumps(_message("inv-2", account_id="nope"))
        + "\n",
    },
}
"""The reader's own files that examples use, per page (``*``: every page)."""

PAGE_SETUP: dict[str, str] = {
    # a reference page whose examples assume the instance they show: tenant acme, account main
    "cli.md": "mail-proxy tenants add acme --name Acme\n"
    "mail-proxy accounts add acme main --host smtp.example.com --port 587\n"
    f"mail-proxy messages add '{json.dumps(_message('inv-1'))}'\n",
}
"""Shell commands run before a page's examples, for the state its examples assume."""


def needs_service(block: Block) -> bool:
    return block.not_run is None and block.language in ("sh", "console", "python")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_examples_of_the_page_run(page: Path, request: pytest.FixtureRequest) -> None:
    blocks = blocks_of(page)
    # the service is started only for pages with something to run against it
    service = request.getfixturevalue("service") if any(map(needs_service, blocks)) else None
    if service is not None:
        for name, content in {**READER_FILES["*"], **READER_FILES.get(page.name, {})}.items():
            (service.cwd / name).write_text(content)
        if page.name in PAGE_SETUP:
            done = run_shell(service, PAGE_SETUP[page.name])
            assert done.returncode == 0, f"set-up of {page.name}: {done.stderr}"
    counts: Counter[str] = Counter()
    for block in blocks:
        counts[check_block(block, service)] += 1
    not_run = [f"{block}: {block.not_run}" for block in blocks_of(page) if block.not_run]
    print(f"{page.name}: {dict(counts)}; not run: {not_run}")
    assert counts["not-run"] == len(not_run)


def test_examples_are_counted() -> None:
    counts = Counter(
        "not-run" if block.not_run else "text" if block.language == "text" else "checked"
        for block in ALL_BLOCKS
    )
    print(f"doc examples: {dict(counts)}")
    for block in ALL_BLOCKS:
        if block.not_run:
            print(f"  not run: {block}: {block.not_run}")
    assert counts["checked"] > counts["not-run"]


def test_the_plugin_guide_test_runs_with_pytest(tmp_path: Path) -> None:
    # docs/plugins.md: the module of section 2 saved as mailproxy_example_relay.py, and the
    # conftest line, the pytest settings and the test module of section 4, run by pytest as a
    # plugin author would
    page = blocks_of(ROOT / "docs" / "plugins.md")
    blocks = [block for block in page if block.language == "python"]
    module = next(block for block in blocks if "def mailproxy_register_transports" in block.text)
    conftest = next(block for block in blocks if block.text.startswith("pytest_plugins"))
    test = next(block for block in blocks if "import mailproxy_example_relay" in block.text)
    (settings,) = [block for block in page if "[tool.pytest.ini_options]" in block.text]
    (tmp_path / "pyproject.toml").write_text(settings.text)
    (tmp_path / "mailproxy_example_relay.py").write_text(module.text)
    (tmp_path / "conftest.py").write_text(conftest.text)
    (tmp_path / "test_example_relay.py").write_text(test.text)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout
