"""MkDocs hooks for the keras_mm site (loaded by mkdocs.yml `hooks:`).

- The notebooks stay in notebooks/ (where they are run and generated) and are
  added to the site as `notebooks/<name>.ipynb` pages, before mkdocs-jupyter
  converts them (it renders their stored outputs; nothing is executed).
- The home page is README.md: docs/index.md holds `<!-- include: README.md -->`,
  replaced by the README with its links made relative to docs/ (`docs/data.md`
  becomes `data.md`), so the story is written once.
- In every page, inline code naming a public object of an API page, such as
  `` `keras_mm.layers.GatedFusion` `` in the concept map, becomes a link to its
  API entry (an autorefs link, so a wrong target fails `mkdocs build --strict`).
  Likewise `` `notebooks/03_clip.ipynb` `` becomes a link to the notebook's page.
  The Markdown sources keep plain code, which reads well on a code host too.

Nothing here imports keras_mm: the API pages are read statically by griffe, so
the build imports neither Keras nor a backend.
"""

import ast
import glob
import os
import posixpath
import re

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API_DIRECTIVE = re.compile(r"^::: (keras_mm(?:\.\w+)+)\s*$", re.MULTILINE)
CODE_NAME = re.compile(r"(?<![\[`])`(keras_mm(?:\.\w+)+)`(?![\]`(])")
INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.MULTILINE)
NOTEBOOK_CODE = re.compile(r"(?<![\[`])`(notebooks/\d\d_\w+\.ipynb)`(?![\]`(])")
FENCE = re.compile(r"^\s*(```|~~~)")
_documented = set()  # "keras_mm.<module>.<name>" of every API page, set by on_config


@event_priority(100)  # before mkdocs-jupyter's on_files picks up the notebooks
def on_files(files, config):
    for path in sorted(glob.glob(os.path.join(REPO, "notebooks", "[0-9]*.ipynb"))):
        uri = "notebooks/" + os.path.basename(path)
        if files.get_file_from_path(uri) is None:
            # A file of the repository root (not File.generated, whose source path
            # mkdocs-jupyter's wrapper does not see).
            files.append(
                File(
                    uri,
                    src_dir=REPO,
                    dest_dir=config["site_dir"],
                    use_directory_urls=config["use_directory_urls"],
                )
            )
    return files


def _module_source(module):
    base = os.path.join(REPO, *module.split("."))
    for path in (os.path.join(base, "__init__.py"), base + ".py"):
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                return f.read()
    raise FileNotFoundError(f"no source for {module} (an API page names it)")


def _public_names(module):
    for node in ast.parse(_module_source(module)).body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "__all__" for t in node.targets
        ):
            return {ast.literal_eval(e) for e in node.value.elts}
    return set()


def on_config(config):
    _documented.clear()
    for page in glob.glob(os.path.join(config["docs_dir"], "api", "*.md")):
        with open(page, encoding="utf-8") as f:
            for module in API_DIRECTIVE.findall(f.read()):
                _documented.update(f"{module}.{n}" for n in _public_names(module))
    return config


def _include(match):
    with open(os.path.join(REPO, match[1]), encoding="utf-8") as f:
        text = f.read()
    return re.sub(r"\]\(docs/", "](", text)


def on_page_markdown(markdown, page, config, files):
    markdown = INCLUDE.sub(_include, markdown)
    here = posixpath.dirname(page.file.src_uri) or "."

    def notebook_link(match):
        if files.get_file_from_path(match[1]) is None:
            return match[0]
        return f"[`{match[1]}`]({posixpath.relpath(match[1], here)})"

    out, fenced = [], False
    for line in markdown.split("\n"):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            line = CODE_NAME.sub(
                lambda m: f"[`{m[1]}`][{m[1]}]" if m[1] in _documented else m[0], line
            )
            line = NOTEBOOK_CODE.sub(notebook_link, line)
        out.append(line)
    return "\n".join(out)
