"""Extract and run the code blocks of the Markdown documentation.

Used by `tests/docs_snippets_test.py` (see its docstring for the rules a doc
author follows). `extract(text, path)` returns the fenced blocks of a page;
`run_python(blocks, workdir)` runs a page's ```python blocks in order in one
namespace; `keras_mm_commands(block)` finds the `keras-mm` calls of a ```bash
block, `small_command(argv, workdir)` turns one into a tiny run, and
`run_keras_mm(commands, workdir)` runs them in order in this process.
"""

import contextlib
import dataclasses
import glob
import io
import os
import re
import shlex

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = ("python", "py")
SHELL = ("bash", "sh", "shell", "console")  # console: only `$ ` lines are commands
WRAPPERS = ("time", "nohup", "env")  # run the command that follows
MARK = re.compile(r"^\s*<!--\s*snippet:(.*?)-->\s*$")
SKIP = re.compile(r"^skip\s*\((.*)\)$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)")

# Size settings of a documented command, per option, when the command has it
# (the values of tests/cli's TINY run, so JAX reuses its cached compilations).
SMALL = {
    "--train-samples": "128",
    "--test-samples": "48",
    "--batch-size": "32",
    "--width": "16",
    "--embed-dim": "16",
    "--epochs": "2",
    "--verbose": "0",
}
# Set only when the documented command gives them (their defaults are small).
SMALL_IF_GIVEN = {"--image-size": "32", "--sequence-length": "10", "--max-images": "16"}
# Only these are set on `train --resume`: the others must equal the saved run's
# (2 epochs again: resuming a finished run loads and saves it, no new compile).
RESUME_SMALL = {"--epochs": "2", "--verbose": "0"}
SHAPES_ONLY = ("--train-samples", "--test-samples")


class SnippetError(ValueError):
    """A malformed page (bad mark, unclosed fence) or a command that cannot run."""


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, code and skip reason."""

    path: str  # the page, as given to `extract`
    line: int  # 1-based line of the block's first code line
    language: str
    code: str
    skip: str = None  # the reason given next to a skip mark, or None


def doc_pages(root=REPO):
    """README.md and every docs/**/*.md, relative to `root`, sorted."""
    pages = ["README.md"] if os.path.isfile(os.path.join(root, "README.md")) else []
    found = glob.glob(os.path.join(root, "docs", "**", "*.md"), recursive=True)
    return pages + sorted(os.path.relpath(p, root) for p in found)


def read_page(page, root=REPO):
    with open(os.path.join(root, page), encoding="utf-8") as f:
        return f.read()


def _parse_mark(text, where):
    directive = text.strip()
    if not directive.startswith("skip"):
        raise SnippetError(
            f"{where}: unknown snippet mark {directive!r}; expected "
            "'<!-- snippet: skip (reason) -->'"
        )
    match = SKIP.match(directive)
    reason = match.group(1).strip() if match else ""
    if not reason:
        raise SnippetError(
            f"{where}: a skip mark needs its reason, e.g. "
            f"'<!-- snippet: skip (needs several hosts) -->'; got {directive!r}"
        )
    return reason


def extract(text, path="<text>"):
    """The fenced code blocks of Markdown `text`, in order.

    A line `<!-- snippet: skip (reason) -->` right before a fence marks that
    block as not run; a mark without a reason, an unknown mark, a mark not
    followed by a fence and an unclosed fence raise `SnippetError`.
    """
    lines = text.splitlines()
    blocks, mark, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        where = f"{path}:{i + 1}"
        found = MARK.match(line)
        if found:
            if mark is not None:
                raise SnippetError(f"{where}: two snippet marks in a row")
            mark = (_parse_mark(found.group(1), where), where)
            i += 1
            continue
        fence = FENCE.match(line)
        if fence is None:
            if mark is not None:
                raise SnippetError(
                    f"{mark[1]}: a snippet mark must be on the line right "
                    "before a code fence"
                )
            i += 1
            continue
        indent, ticks, language = fence.groups()
        end = i + 1
        while end < len(lines) and not re.match(
            rf"^\s*{re.escape(ticks[0])}{{{len(ticks)},}}\s*$", lines[end]
        ):
            end += 1
        if end == len(lines):
            raise SnippetError(f"{where}: code fence never closed")
        body = [
            ln[len(indent) :] if ln.startswith(indent) else ln.lstrip()
            for ln in lines[i + 1 : end]
        ]
        blocks.append(
            Block(
                path=path,
                line=i + 2,
                language=language.lower(),
                code="\n".join(body) + "\n",
                skip=mark[0] if mark else None,
            )
        )
        mark, i = None, end + 1
    if mark is not None:
        raise SnippetError(f"{mark[1]}: snippet mark at the end of the page")
    return blocks


@contextlib.contextmanager
def _isolated(workdir, env=None):
    """Run in `workdir`; restore the working directory and os.environ after."""
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    os.chdir(workdir)
    os.environ.update(env or {})
    try:
        yield
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)


def run_python(blocks, workdir):
    """Run the ```python blocks not marked skip, in order, in one namespace.

    Runs in this process with `workdir` as working directory. An error
    propagates, its traceback naming the page and line of the failing code.
    Returns the blocks run.
    """
    ran = [b for b in blocks if b.language in PYTHON and b.skip is None]
    namespace = {"__name__": "__main__"}
    with _isolated(workdir):
        for block in ran:
            # Pad so that line numbers in a traceback are the page's.
            source = "\n" * (block.line - 1) + block.code
            filename = os.path.join(REPO, block.path)
            exec(compile(source, filename, "exec"), namespace)
    return namespace


def _logical_lines(block):
    """`(line number, text)` of a shell block's commands.

    Backslash continuations are joined and a `$ ` prompt is dropped; in a
    ```console block only the `$ ` lines are commands (the rest is output).
    """
    lines, current, start = [], "", None
    for number, line in enumerate(block.code.splitlines(), block.line):
        if start is None:
            prompt = line.lstrip().startswith("$ ")
            if block.language == "console" and not prompt:
                continue
            line = line.lstrip()[2:] if prompt else line
            start = number
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        lines.append((start, current + line))
        current, start = "", None
    if current:
        lines.append((start, current))
    return lines


def _split_commands(tokens):
    commands, current = [], []
    for token in tokens:
        if token in ("&&", ";", "||"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    return [c for c in commands if c]


def keras_mm_commands(block):
    """The `keras-mm` calls of a shell block: a list of `(env, argv, where)`.

    `where` is `page:line` of the call, `env` the `NAME=value` assignments
    before it, `argv` its arguments after `keras-mm` (or `python -m
    keras_mm.cli`). Other commands
    (`pip`, `make`, `python script.py`, ...) are left out. A `keras-mm` call
    piped or redirected raises `SnippetError`.
    """
    commands = []
    for number, line in _logical_lines(block):
        where = f"{block.path}:{number}"
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        for tokens in _split_commands(list(lexer)):
            env = {}
            while tokens and (
                tokens[0] in WRAPPERS
                or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[0])
            ):
                name, _, value = tokens.pop(0).partition("=")
                if name not in WRAPPERS:
                    env[name] = value
            if tokens[:1] == ["keras-mm"]:
                argv = tokens[1:]
            elif len(tokens) > 2 and tokens[1:3] == ["-m", "keras_mm.cli"]:
                argv = tokens[3:]
            else:
                continue
            if any(t in ("|", ">", ">>", "<", "&", "2>", "(", ")") for t in argv):
                raise SnippetError(
                    f"{where}: cannot run {line.strip()!r} (pipe or "
                    "redirection); mark the block with a skip reason"
                )
            commands.append((env, argv, where))
    return commands


def _subcommand_options():
    """`{command: its option strings}` from keras-mm's own parser."""
    from keras_mm.cli.parser import make_parser

    parser = make_parser()
    for action in parser._subparsers._group_actions:
        return {
            name: set(sub._option_string_actions)
            for name, sub in action.choices.items()
        }
    return {}


def _set_option(argv, option, value):
    """`argv` with `option` set to `value` (replaced if given, else appended)."""
    out, i, found = [], 0, False
    while i < len(argv):
        arg = argv[i]
        if arg == option:
            out += [option, value]
            found, i = True, i + 2
            continue
        if arg.startswith(option + "="):
            out.append(f"{option}={value}")
            found = True
        else:
            out.append(arg)
        i += 1
    return out if found else out + [option, value]


def _option_value(argv, option):
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def small_command(argv, workdir, backend):
    """A documented `keras-mm` argv turned into a tiny run inside `workdir`.

    The backend is this process's (`--backend` rewritten), absolute and `~`
    paths move under `workdir`, size options take the `SMALL` values where the
    command has them (`train --resume`: `RESUME_SMALL` only; the shapes-only
    ones only with `--dataset shapes`), and `--fail-under METRIC=V` becomes
    `METRIC=0` (a tiny run cannot reach a real threshold; the name is kept).
    """
    out = []
    for arg in argv:
        value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
        if value.startswith(("/", "~")):
            moved = os.path.join(workdir, value.lstrip("~/"))
            arg = arg[: len(arg) - len(value)] + moved
        out.append(arg)
    argv = out
    if "--backend" in argv or any(a.startswith("--backend=") for a in argv):
        argv = _set_option(argv, "--backend", backend)
    options = _subcommand_options()
    command = next((a for a in argv if a in options), None)
    if command is None:
        return argv
    small = RESUME_SMALL if "--resume" in argv else SMALL
    if "--resume" not in argv:
        given = {k: v for k, v in SMALL_IF_GIVEN.items() if _option_value(argv, k)}
        small = {**small, **given}
    for option, value in small.items():
        if option not in options[command]:
            continue
        if option in SHAPES_ONLY and _option_value(argv, "--dataset") != "shapes":
            continue
        argv = _set_option(argv, option, value)
    argv = [
        re.sub(r"=[^=]*$", "=0", a) if i and argv[i - 1] == "--fail-under" else a
        for i, a in enumerate(argv)
    ]
    return argv


def run_keras_mm(commands, workdir):
    """Run `(env, argv, where)` commands in order in this process.

    Each is made small (`small_command`) and run with `keras_mm.cli.main`,
    the function the console script calls, in `workdir`, with the command's
    `NAME=value` assignments set (except `KERAS_BACKEND`). Raises
    `AssertionError` naming the page, line, the argv run and its stderr at the
    first non-zero exit code. Returns the argv lists run.
    """
    import keras

    from keras_mm.cli import main

    backend = keras.backend.backend()
    ran = []
    for env, documented, where in commands:
        env = {k: v for k, v in env.items() if k != "KERAS_BACKEND"}
        argv = small_command(documented, workdir, backend)
        out, err = io.StringIO(), io.StringIO()
        with _isolated(workdir, env):
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
        if code != 0:
            raise AssertionError(
                f"{where}: `keras-mm {shlex.join(documented)}` run as "
                f"`keras-mm {shlex.join(argv)}` "
                f"exited with {code}:\n{err.getvalue()}{out.getvalue()[-2000:]}"
            )
        ran.append(argv)
    return ran
