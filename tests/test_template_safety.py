"""What no template may contain (issue 11, finding 1): the source-level half of the XSS
protection, next to the browser crawl in e2e/test_xss_crawl.py and the CSP."""

from __future__ import annotations

import re
from pathlib import Path

from bunbase.config import ROOT

TEMPLATES = sorted(
    p for folder in (ROOT / "templates", ROOT / "modules") for p in folder.rglob("*.html")
)
#: `|safe` only on markup the code itself owns
SAFE_ALLOWED = {"templates/partials/icons.html": "the icon set's own SVG paths"}


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_there_are_templates_to_check():
    assert len(TEMPLATES) > 40


def test_no_template_uses_tojson():
    """`tojson` output is markup that is safe inside <script> only; in a quoted attribute it
    breaks out (the probe's stored XSS). Templates use the `json` filter, escaped as text."""
    hits = [_rel(p) for p in TEMPLATES if re.search(r"\|\s*tojson", p.read_text())]
    assert hits == []


def test_no_inline_event_handlers_or_javascript_urls():
    pattern = re.compile(r"<[^>]*\s(on[a-z]+\s*=|(href|src|action)\s*=\s*[\"']?\s*javascript:)", re.I)
    hits = [f"{_rel(p)}: {m.group(0)[:80]}" for p in TEMPLATES for m in pattern.finditer(p.read_text())]
    assert hits == []


def test_every_script_tag_carries_the_nonce_and_none_is_inline():
    for p in TEMPLATES:
        for tag in re.findall(r"<script\b[^>]*>", p.read_text()):
            assert 'nonce="{{ csp_nonce() }}"' in tag, f"{_rel(p)}: {tag}"
            assert "src=" in tag, f"{_rel(p)}: inline script {tag}"


def test_safe_only_where_allowed():
    hits = [_rel(p) for p in TEMPLATES if re.search(r"\|\s*safe\b", p.read_text())]
    assert set(hits) <= set(SAFE_ALLOWED), hits


def test_no_unquoted_attribute_values_from_variables():
    hits = [f"{_rel(p)}: {m.group(0)}" for p in TEMPLATES
            for m in re.finditer(r"\s[a-z-]+=\{\{", p.read_text())]
    assert hits == []
