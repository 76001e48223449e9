"""Sphinx extension that serves the book's JavaScript from vendored copies instead of CDNs.

The built book must work offline, so vega, vega-lite, vega-embed and MathJax come from
``bnnlib/vendor`` (see ``versions.json`` there). The folder is added to ``html_static_path`` after
Jupyter Book has assembled its configuration: Jupyter Book only auto-injects files from a source
``_static`` folder, so nothing here lands on every page. The vega scripts are added only to pages
whose body holds a chart from :mod:`bnnlib_book.charts`; MathJax is loaded by Sphinx on pages with math.
Jupyter Book always loads sphinx-thebe, whose loader names a CDN URL; with the thebe launch button
off that loader can never run, so it is dropped from the pages. The book's own style sheet
(``static/``, tables that fit the text column) is served on every page.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

VENDOR_DIR = Path(__file__).parent / "vendor"
STATIC_DIR = Path(__file__).parent / "static"
STYLE_SHEETS = ("tables.css",)
CHART_CLASS = "bnnlib-vega"
VEGA_LIBRARIES = ("vega", "vega-lite", "vega-embed")


def vendored() -> dict[str, dict[str, str]]:
    """The vendored libraries: name -> {"version", "file" (relative to VENDOR_DIR), "source"}."""
    return json.loads((VENDOR_DIR / "versions.json").read_text())


def _use_vendor_dir(app: Any, config: Any) -> None:
    config.html_static_path = [*config.html_static_path, str(VENDOR_DIR), str(STATIC_DIR)]
    config.mathjax_path = vendored()["mathjax"]["file"]


def _is_thebe_loader(script: Any) -> bool:
    filename = str(getattr(script, "filename", script) or "")
    body = getattr(script, "attributes", {}).get("body", "")
    return filename.endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body


def _page_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    if not app.config.html_theme_options.get("launch_buttons", {}).get("thebe"):
        scripts = context.get("script_files", [])
        scripts[:] = [s for s in scripts if not _is_thebe_loader(s)]
    if f'class="{CHART_CLASS}"' in context.get("body", ""):
        libraries = vendored()
        for name in VEGA_LIBRARIES:
            app.add_js_file(libraries[name]["file"])


def setup(app: Any) -> dict[str, Any]:
    """Register with Sphinx (listed under ``sphinx.extra_extensions`` in ``_config.yml``)."""
    app.connect("config-inited", _use_vendor_dir)
    app.connect("html-page-context", _page_scripts)
    for sheet in STYLE_SHEETS:
        app.add_css_file(sheet)
    # A new env_version makes Sphinx rewrite every page, so a change here reaches pages whose
    # sources did not change.
    digest = hashlib.sha256(
        Path(__file__).read_bytes()
        + (VENDOR_DIR / "versions.json").read_bytes()
        + b"".join((STATIC_DIR / sheet).read_bytes() for sheet in STYLE_SHEETS)
    )
    return {
        "env_version": int(digest.hexdigest()[:8], 16),
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
