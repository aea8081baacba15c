"""Griffe extension: keras_mm's Keras-style docstrings as Markdown for the API pages.

The docstrings follow Keras' layout (shared/STYLE.md), which griffe's Google
parser reads only in part. `Args:` stays a griffe section (a parameter list);
the rest is rewritten into plain Markdown before griffe parses it:

- `Call arguments:`, `Returns:` and `Example:` become a bold label followed by
  their text; `Call arguments:` items (`name: text`) become a Markdown list.
- Doctest lines (`>>> ...` and their printed output), which Markdown would read
  as nested quotes, are wrapped in a fenced `pycon` block, doctest flags such as
  `# doctest: +SKIP` removed.
- An `Args:` item whose names wrap onto the next line (`a, b,` / `c: text`) is
  joined into one line: griffe wants the names and the colon on one line.
- A list right after a line ending in `:` ("A dict:") gets the blank line Markdown
  needs to see a list.

A package that imports a function named like its own module (`clip_loss` from
`keras_mm/losses/clip_loss.py`) exports the function, as Python does; griffe
would keep the submodule under that name and leave the function out.

Only the text griffe parses is changed (lazily, at render time); the source and
`help()` are untouched. Loaded by mkdocs.yml (the python handler's `extensions`).
"""

import re

import griffe

LABELS = {
    "Call arguments:": "Call arguments",
    "Returns:": "Returns",
    "Example:": "Example",
    "Examples:": "Examples",
}
DOCTEST_FLAG = re.compile(r"\s*#\s*doctest:.*$")
WRAPPED_NAMES = re.compile(r"^\s*\w+(,\s*\w+)*,$")
ITEM = re.compile(r"^(\*{0,2}[A-Za-z_][\w, *]*):\s+(.*)$")


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def _labelled_sections(lines):
    out, label = [], None
    for line in lines:
        if line.strip() and _indent(line) == 0:
            label = LABELS.get(line.strip())
            if label:
                out += [f"**{label}:**", ""]
                continue
        if label and _indent(line) >= 4:
            line = line[4:]
            match = ITEM.match(line) if label == "Call arguments" else None
            if match:
                line = f"- `{match[1]}`: {match[2]}"
        out.append(line)
    return out


def _fence_doctests(lines):
    out, i, fenced = [], 0, False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if fenced or not line.lstrip().startswith(">>>"):
            out.append(line)
            i += 1
            continue
        pad = " " * _indent(line)
        block = []
        while i < len(lines) and lines[i].strip():
            block.append(DOCTEST_FLAG.sub("", lines[i]))
            i += 1
        if out and out[-1].strip():
            out.append("")
        out += [pad + "```pycon", *block, pad + "```"]
    return out


def _join_wrapped_names(lines):
    out = []
    for line in lines:
        if out and WRAPPED_NAMES.match(out[-1]):
            line = out.pop() + " " + line.strip()
        out.append(line)
    return out


def _blank_before_lists(lines):
    out = []
    for line in lines:
        if (
            line.lstrip().startswith("- ")
            and out
            and out[-1].rstrip().endswith(":")
            and not out[-1].lstrip().startswith("- ")
        ):
            out.append("")
        out.append(line)
    return out


def markdown_docstring(text):
    """The docstring `text` (dedented) with the rewrites of this module applied."""
    lines = text.split("\n")
    for rewrite in (
        _labelled_sections,
        _fence_doctests,
        _join_wrapped_names,
        _blank_before_lists,
    ):
        lines = rewrite(lines)
    return "\n".join(lines)


def _unshadow(module):
    """Puts the imported object, not the same-named submodule, under its name."""
    for name, member in list(module.members.items()):
        if member.is_alias or not member.is_module:
            continue
        _unshadow(member)
        target = member.members.get(name)
        if target is not None and module.imports.get(name) == target.path:
            del module.members[name]
            module.set_member(name, griffe.Alias(name, target, parent=module))


class KerasDocstrings(griffe.Extension):
    """Rewrites every docstring griffe loads with `markdown_docstring`; see above."""

    def on_package(self, *, pkg, **kwargs):
        _unshadow(pkg)

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
