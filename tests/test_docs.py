"""Every page a reader follows, run as a reader would: each fenced block of README.md and
docs/*.md is a test. Files are written, commands and snippets run in a folder of the page's
own, output the page shows is compared with what a run prints, and a block that is not run
says why in the page (tests/helpers/doc_blocks.py has the markers); an unmarked block
fails. A page runs once, in order; its blocks' outcomes are the tests below."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import cast

import pytest
from helpers import REPO
from helpers.doc_blocks import Block, parse_page
from helpers.doc_runner import PageRun

from benchmarks.official_sdk import OfficialSDKUnavailable, official_python

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCKS = [block for path in PAGES for block in parse_page(path, REPO).blocks]


@pytest.fixture(scope="session")
def page_runs(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[PageRun]]]:
    """Each page this session tests, run once; the pages run side by side (each in a
    folder of its own, with names of its own), since most of the time is spent waiting
    for the processes they start."""
    wanted = sorted({cast(Block, item.callspec.params["block"]).page
                     for item in request.session.items
                     if isinstance(item, pytest.Function)
                     and item.originalname == "test_doc_block"})
    # The folders are made here, in one thread: the factory creates its base folder on
    # first use, and two threads doing so at once made two and refused one page's folder.
    folders = {page: tmp_path_factory.mktemp(Path(page).stem) for page in wanted}
    with ThreadPoolExecutor(max_workers=3) as pool:
        yield {page: pool.submit(_run_page, page, folders[page]) for page in wanted}


def _run_page(page: str, folder: Path) -> PageRun:
    return PageRun(parse_page(REPO / page, REPO), folder, REPO, _official)


def _official() -> str | None:
    try:
        return official_python()
    except OfficialSDKUnavailable:
        return None


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_doc_block(block: Block, page_runs: dict[str, Future[PageRun]]) -> None:
    outcome = page_runs[block.page].result(timeout=600).outcome(block)
    if outcome.status == "skip":
        pytest.skip(outcome.message)
    assert outcome.status == "ok", outcome.message


def test_every_page_is_checked() -> None:
    """A new page joins the check by being in docs/; each has blocks or says nothing."""
    assert {b.page for b in BLOCKS} >= {"README.md", "docs/getting-started.md",
                                        "docs/testing.md", "docs/writing-plugins.md",
                                        "docs/migrating.md", "docs/packaging.md"}


def _page_outcomes(tmp_path: Path, markdown: str) -> list[tuple[str, str]]:
    (tmp_path / "page.md").write_text(markdown)
    page = parse_page(tmp_path / "page.md", tmp_path)
    folder = tmp_path / "run"
    folder.mkdir()
    run = PageRun(page, folder, REPO, lambda: None)
    return [(block.id, run.outcome(block).status) for block in page.blocks]


def test_the_check_fails_an_unmarked_block_and_a_wrong_output(tmp_path: Path) -> None:
    outcomes = _page_outcomes(tmp_path, """\
<!-- docs: names tool -->
```
a new block nobody marked
```

<!-- docs: skip needs a running eKuiper -->
```
ekuiper-plugin install x.zip
```

`tool/a.txt`:

```text
tool
```

```sh
cat tool/a.txt; ls
```

<!-- docs: output -->
```
tool
example
tool
```

```sh
echo 1
```

<!-- docs: output -->
```
2
```
""")
    assert outcomes[0] == ("page.md:2-UNMARKED", "fail")
    assert outcomes[1] == ("page.md:7-skip-needs-a-running-ekuiper", "skip")
    # the names get one suffix in files, commands and outputs alike
    assert [status for _, status in outcomes[2:]] == ["ok", "ok", "ok", "ok", "fail"]


def test_a_python_fragment_runs_after_the_prelude_and_a_signature_is_compared(
        tmp_path: Path) -> None:
    outcomes = _page_outcomes(tmp_path, """\
<!-- docs: prelude
from ekuiper_sdk import Plugin
app = Plugin("docs")
-->
```python
@app.function("clamp")
def clamp(x: float, low: float = 0.0, high: float = 1.0) -> float:
    return min(max(x, low), high)
assert app.symbol_names()["functions"] == ["clamp"]
```

```python
@app.source("bad")
def bad(ctx): ...
```

<!-- docs: signature ekuiper_sdk:Plugin -->
```python
Plugin(name, *, state_dir=None)
```
""")
    assert [status for _, status in outcomes] == ["ok", "fail", "fail"]


def test_the_repository_paths_the_pages_name_exist() -> None:
    """`tests/...`, `example/...` and the like, named in a page's text, are where it says."""
    wrong = []
    for path in PAGES:
        # the text outside fenced blocks, where a listing may name a generated project's files
        text = re.sub(r"^( *)```.*?^\1```", "", path.read_text(), flags=re.S | re.M)
        for name in re.findall(r"`((?:tests|ekuiper_sdk|example|benchmarks|docs)/[^`\s]*)`",
                               text):
            if not (REPO / name).exists():
                wrong.append(f"{path.relative_to(REPO)}: {name}")
    assert wrong == []
