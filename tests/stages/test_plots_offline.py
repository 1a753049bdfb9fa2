"""`dvc plots show` / `dvc plots diff` pages work offline.

The repo's .dvc/config sets `plots.html_template` to vendor/vega/offline_template.html, a page with
vega, vega-lite and vega-embed inlined (vendor/vega/build_template.py). These tests copy that config
and the vendor folder into a throwaway git + DVC repo, run plain `dvc plots show` and
`dvc plots diff` there (no --html-template flag: the config alone must do it) and read the page.

What "offline" is asserted as, and why not simply "no http in the page": the inlined, minified
libraries legitimately contain URL strings that are never fetched (SVG/XLink namespace URIs, the
Vega editor link behind the "..." menu, issue links in error messages, schema ids). So the checks are:
- no <script src=...> and no <link ...> at all: every script the page runs is inline;
- no CDN host anywhere in the page (DVC's default page loads the libraries from cdn.jsdelivr.net);
- outside the inlined libraries, the only http(s) URLs are the vega/vega-lite `$schema` ids in the
  plot specs, which vega-embed only parses as strings to choose the mode, never loads;
- the inlined libraries are byte for byte the npm files recorded in vendor/vega/sources.json, at the
  versions dvc_render's own CDN tags name (a dvc-render upgrade that moves them fails here).
"""
from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "vendor" / "vega"
sys.path.insert(0, str(VENDOR))
import build_template  # noqa: E402

SCHEMA_ID = re.compile(r"https://vega\.github\.io/schema/vega(-lite)?/v\d+\.json")


def repo_template_path() -> Path:
    """plots.html_template from the repo's .dvc/config, resolved as DVC does (relative to .dvc/)."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    value = config.get("plots", "html_template")
    return (ROOT / ".dvc" / value).resolve() if not os.path.isabs(value) else Path(value)


def dvc(cwd: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    out = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


def assert_offline(html: str) -> None:
    assert "{plot_divs}" not in html and "<div id" in html, "no plot was rendered into the page"
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", html, re.I), "a <script src=...> tag"
    assert not re.search(r"<link\b", html, re.I), "a <link> tag (external stylesheet)"
    assert not re.search(r"cdn\.|jsdelivr|unpkg", html, re.I), "a CDN host"
    libs = build_template.inlined(html)
    assert list(libs) == [s["spec"] for s in json.loads((VENDOR / "sources.json").read_text())]
    ours = build_template.without_inlined(html)
    urls = re.findall(r"https?://[^\s\"'<>)]+", ours)
    assert all(SCHEMA_ID.fullmatch(u) for u in urls), f"URLs outside the inlined libraries: {urls}"


def test_repo_config_points_at_vendored_template():
    assert repo_template_path() == (VENDOR / "offline_template.html").resolve()
    template = repo_template_path().read_text(encoding="utf8")
    assert "{plot_divs}" in template
    assert "{scripts}" not in template, "with a {scripts} marker dvc_render inserts the CDN tags"


def test_vendored_libraries_match_sources_and_dvc_render_versions():
    sources = json.loads((VENDOR / "sources.json").read_text())
    assert [s["spec"] for s in sources] == build_template.cdn_specs()
    libs = build_template.inlined((VENDOR / "offline_template.html").read_text(encoding="utf8"))
    for s in sources:
        assert hashlib.sha256(libs[s["spec"]].encode("utf8")).hexdigest() == s["sha256"], s["spec"]
        assert (VENDOR / f"LICENSE.{s['name']}").exists()


@pytest.fixture
def plots_repo(tmp_path: Path) -> Path:
    """A git + DVC repo with the project's .dvc/config and vendor/vega, and one committed plot."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    dvc(repo, "init", "-q")
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    shutil.copytree(VENDOR, repo / "vendor" / "vega", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "curves").mkdir()
    (repo / "curves" / "loss.tsv").write_text("step\tloss\n0\t1.0\n1\t0.5\n2\t0.3\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "plot")
    return repo


def test_dvc_plots_show_and_diff_are_offline(plots_repo: Path):
    dvc(plots_repo, "plots", "show", "curves/loss.tsv")
    page = plots_repo / "dvc_plots" / "index.html"
    assert_offline(page.read_text(encoding="utf8"))

    (plots_repo / "curves" / "loss.tsv").write_text("step\tloss\n0\t1.0\n1\t0.4\n2\t0.2\n")
    page.unlink()
    dvc(plots_repo, "plots", "diff", "HEAD", "--targets", "curves/loss.tsv")
    html = page.read_text(encoding="utf8")
    assert_offline(html)
    assert "HEAD" in html and "workspace" in html
