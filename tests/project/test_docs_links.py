"""Every relative link of the README and the manual (docs/) reaches a file, and its #anchor a heading there."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _prose(page: Path) -> str:
    """The page without its fenced code blocks (a ``#`` there is a comment, a ``](`` is code)."""
    return re.sub(r"^```.*?^```[^\n]*$", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)


def _anchors(page: Path) -> set:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as dashes."""
    return {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in _prose(page).splitlines()
        if line.startswith("#")
    }


def _broken_links(pages, root: Path) -> list:
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", _prose(page)):
            if target.startswith(("http:", "https:", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(root)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(root)}: {target} (no such heading)")
    return broken


def test_every_link_of_the_readme_and_the_manual_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    assert _broken_links(pages, ROOT) == []


def test_the_check_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# A heading\n[ok](#a-heading) [gone](missing.md) [bad](#nowhere) [code](#a-comment)\n"
        "```bash\n# a comment\nls [x](not-a-link.md)\n```\n",
        encoding="utf-8",
    )
    assert _broken_links([page], tmp_path) == [
        "page.md: missing.md (no such file)",
        "page.md: #nowhere (no such heading)",
        "page.md: #a-comment (no such heading)",
    ]
