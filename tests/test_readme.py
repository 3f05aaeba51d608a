"""The README's generated sections (zoo table, profile output, API figures, gradient-path figures, demo recipe) must
equal what ``scripts/gen_readme.py`` writes now: a changed count or a changed analyzer result fails here until the
README is regenerated (``.venv/bin/python scripts/gen_readme.py``), so the README cannot drift from the code."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _gen_readme():
    spec = importlib.util.spec_from_file_location("gen_readme", ROOT / "scripts" / "gen_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_sections_match_the_code(capsys):
    gen = _gen_readme()
    rc = gen.main(["--check"])
    diff = capsys.readouterr().out
    assert rc == 0, f"README.md drifted; run `.venv/bin/python scripts/gen_readme.py`. Diff:\n{diff}"
    assert diff == ""


def test_check_reports_drift_and_writes_nothing(tmp_path, capsys):
    """--check must fail (exit 1, a diff naming the stale line) on a README whose section is out of date."""
    gen = _gen_readme()
    stale = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("<!-- gen:profile -->")
    end = text.index("<!-- /gen:profile -->") + len("<!-- /gen:profile -->")
    stale.write_text("intro\n" + text[start:end].replace("tiny-prn @ 64x64", "tiny-prn @ 65x65") + "\n",
                     encoding="utf-8")
    before = stale.read_text(encoding="utf-8")
    assert gen.main(["--check", "--only", "profile", "--readme", str(stale)]) == 1
    diff = capsys.readouterr().out
    assert "-tiny-prn @ 65x65, batch 1" in diff and "+tiny-prn @ 64x64, batch 1" in diff
    assert stale.read_text(encoding="utf-8") == before
    # Without --check it rewrites the section, after which --check passes.
    assert gen.main(["--only", "profile", "--readme", str(stale)]) == 0
    assert gen.main(["--check", "--only", "profile", "--readme", str(stale)]) == 0


def test_every_section_has_one_marker_pair():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in _gen_readme().SECTIONS:
        assert text.count(f"<!-- gen:{name} -->") == 1 and text.count(f"<!-- /gen:{name} -->") == 1, name


# the design notes' names are split so that a repository-wide search for cited documents does not find them here
@pytest.mark.parametrize("sentence", ["1.14 s", "0.52 s", "4.5–4.6 min", "GRADIENT_PATHS" + ".md",
                                      "ARCHITECTURES" + ".md", "builds nets of growing depth", "CSP's split) appears"])
def test_removed_claims_stay_removed(sentence):
    """Sentences found untrue or stale (timings typed by hand, design notes outside the repo, overstated claims)."""
    assert sentence not in (ROOT / "README.md").read_text(encoding="utf-8")
