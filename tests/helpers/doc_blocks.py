"""The fenced blocks of the docs and what each page says to do with them.

A page tells the docs check (tests/test_docs.py) what each block is with an HTML comment
right before the fence (a blank line between is allowed), invisible on GitHub:

- ``<!-- docs: file PATH -->``, or a caption line `` `PATH`...: `` just above: the block is
  a file the page has the reader write; it is written into the page's folder.
- ``<!-- docs: run -->``: shell commands, run with bash in the page's folder (the default
  for ``sh`` blocks). ``run installed``: each ``python -m pip install ...`` is taken as done
  (the suite runs where the package and its extras are installed) and checked to be so.
- ``<!-- docs: python -->``: run as a script in the page's folder (the default for
  ``python`` blocks), after the page's prelude; a plugin script (one that calls
  ``plugin.start(`` or ``app.run(``) runs with ``EKUIPER_SDK_LIST_SYMBOLS=1``, so it lists
  its symbols and exits instead of waiting for eKuiper.
  ``python official``: with the official SDK's interpreter, this SDK on its path.
- ``<!-- docs: pytest PATH -->``: written to PATH and run with pytest.
- ``<!-- docs: output -->``: what the run block before it prints on stdout, compared.
- ``<!-- docs: excerpt PATH -->``: the block is a part of the page folder's file PATH,
  as an earlier block wrote it (line wrapping aside).
- ``<!-- docs: parse -->``: checked to be valid JSON or YAML (the default for ``json`` and
  ``yaml`` blocks).
- ``<!-- docs: signature MODULE:NAME -->``: the block ``Name(a, *, b=1)`` is compared
  with the signature of the object (parameters, kinds and defaults).
- ``<!-- docs: skip REASON -->``: deliberately not run; the reason is in the test id.

Two comments apply to the whole page: ``<!-- docs: names a b -->`` gives those names
(plugin and function names, which name IPC sockets under /tmp) a unique suffix in every
block, file and expected output of the page; ``<!-- docs: prelude ... -->`` holds Python
code run before each python block of the page after it (imports, ``app = Plugin(...)``).

A block with none of these and no default is an error of the check: a new block must be
run or marked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("file", "run", "python", "pytest", "output", "excerpt", "parse", "signature",
         "skip")
#: What an unmarked block of each language is.
DEFAULTS = {"sh": "run", "python": "python", "json": "parse", "yaml": "parse"}

_FENCE = re.compile(r"^( *)```(\S*)[^\n]*\n(.*?)^\1```[ \t]*$", re.S | re.M)
_COMMENT = re.compile(r"<!--\s*docs:\s*((?:(?!-->).)*?)\s*-->\s*\Z", re.S)
_CAPTION = re.compile(r"^`([^`\s]+)`[^\n]*:\s*\Z")
_PAGE = re.compile(r"<!--\s*docs:\s*(names|prelude)\b(.*?)-->", re.S)


@dataclass
class Block:
    page: str           # relative to the repository
    line: int           # of the opening fence, 1-based
    lang: str
    text: str
    kind: str | None    # None: unmarked, no default
    arg: str = ""

    @property
    def id(self) -> str:
        """The test id: page, line, and what is done with the block."""
        what = self.kind or "UNMARKED"
        if self.arg:
            what += "-" + re.sub(r"[^\w.]+", "-", self.arg.lower()).strip("-")[:60]
        return f"{self.page}:{self.line}-{what}"


@dataclass
class Page:
    path: str
    blocks: list[Block]
    names: list[str] = field(default_factory=list)
    #: (line, code): each prelude applies to the python blocks below it.
    preludes: list[tuple[int, str]] = field(default_factory=list)

    def prelude_for(self, block: Block) -> str:
        return "\n".join(code for line, code in self.preludes if line < block.line)


def _directive(before: str, lang: str) -> tuple[str | None, str]:
    """The kind and argument a block gets from the text before its fence."""
    lines = before.rstrip("\n").split("\n")
    # at most one blank line between the comment (or caption) and the fence
    tail = "\n".join(lines[-8:])
    comment = _COMMENT.search(tail)
    if comment and not _PAGE.fullmatch(comment.group(0).strip()):
        word, _, arg = comment.group(1).partition(" ")
        if word not in KINDS:
            raise ValueError(f"unknown docs directive {word!r}; known: {', '.join(KINDS)}")
        return word, arg.strip()
    last = [line for line in lines[-2:] if line.strip()]
    if last and _CAPTION.match(last[-1]):
        return "file", _CAPTION.match(last[-1]).group(1)  # type: ignore[union-attr]
    return DEFAULTS.get(lang), ""


def parse_page(path: Path, root: Path) -> Page:
    """Every fenced block of a markdown file, with its directive."""
    text = path.read_text()
    rel = path.relative_to(root).as_posix()
    blocks = []
    for m in _FENCE.finditer(text):
        indent, lang, body = m.group(1), m.group(2), m.group(3)
        body = "\n".join(line[len(indent):] for line in body.split("\n"))
        kind, arg = _directive(text[:m.start()], lang)
        blocks.append(Block(rel, text.count("\n", 0, m.start()) + 1, lang, body, kind, arg))
    page = Page(rel, blocks)
    for m in _PAGE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        if m.group(1) == "names":
            page.names.extend(m.group(2).split())
        else:
            page.preludes.append((line, m.group(2).strip("\n")))
    return page


def renamer(names: list[str], suffix: str):  # type: ignore[no-untyped-def]
    """Give each of ``names`` the suffix wherever it stands as a word of its own or as the
    start of one before ``_`` (``demo_counter``, a symbol ``init`` names after the plugin,
    becomes ``demo_x_counter``), and not after a ``.``: ``str.upper()`` stays."""
    if not names:
        return lambda s: s
    ordered = sorted(names, key=len, reverse=True)    # pysam_async before pysam
    pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, ordered)) +
                         r")(?![A-Za-z0-9])")
    return lambda s: pattern.sub(lambda m: m.group(1) + suffix, s)
