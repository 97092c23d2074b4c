"""The docs stay true to the repository: links resolve, the paths they name exist, the flags they show exist.

Checked pages: README.md, docs/*.md and data_cards/*.md (flags: README.md and docs/*.md only; the data cards show
the demo generator's own options). Every check collects all problems and reports them at once.
"""

import importlib
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
CARDS = sorted((ROOT / "data_cards").glob("*.md"))
PAGES = [README, *DOCS, *CARDS]
FLAG_PAGES = [README, *DOCS]

README_MAX_LINES = 250

# Flags of other tools that the docs show, each where it is used. Kept to what the docs use
# (test_flag_allowlist_is_used fails on an entry no page needs any more).
OTHER_TOOLS_FLAGS = {
    # accelerate launch: docs/gpus.md's commands, --launcher in docs/cross-validation.md
    "--num_processes", "--multi_gpu", "--num_machines", "--machine_rank", "--main_process_ip", "--main_process_port",
    "--cpu",
    # pip install torch --index-url (docs/setup.md: the CPU build of torch)
    "--index-url",
    # hf download --local-dir (docs/own-corpus.md), hf upload --repo-type space (docs/app-and-onnx.md)
    "--local-dir", "--repo-type",
    # git lfs pull --include "AudioWAV/*" (docs/recipes.md: CREMA-D's audio only)
    "--include",
    # the placeholder for any recipe field, as in `[--field value ...]` (run.sh and ser_hf/cli.py use it too)
    "--field",
}

# run.sh's own switches (not a recipe's): --cv runs recipes/crossval.py, --search recipes/search.py.
RUN_SH_FLAGS = {"--cv", "--search"}

REPO_PATH_PREFIXES = ("ser_hf/", "recipes/", "tests/", "docs/", "data_cards/")
REPO_FILES = ("run.sh", "pyproject.toml", "requirements.txt")

FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
INLINE_CODE = re.compile(r"`([^`]+)`")  # a span may wrap onto the next line


def split_markdown(text):
    """(prose, fenced code blocks): the page's text outside ``` fences, and the text of each fence."""
    prose, fences, current = [], [], None
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if current is None:
                current = []
            else:
                fences.append("\n".join(current))
                current = None
            continue
        (prose if current is None else current).append(line)
    assert current is None, "a ``` fence is never closed"
    return "\n".join(prose), fences


def code_spans(prose):
    return INLINE_CODE.findall(prose)


def github_slug(heading):
    """The anchor GitHub gives a heading: link text kept, lowercase, punctuation but - and _ dropped, spaces -> -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page):
    """Every heading anchor of a markdown page, duplicates numbered as GitHub does (-1, -2, ...)."""
    prose, _ = split_markdown(page.read_text(encoding="utf-8"))
    seen, result = {}, set()
    for line in prose.splitlines():
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        result.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return result


def rel(path):
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def broken_links(page):
    prose, _ = split_markdown(page.read_text(encoding="utf-8"))
    prose = INLINE_CODE.sub("code", prose)  # a [x](y) inside code is not a link
    problems = []
    for target in LINK.findall(prose):
        if re.match(r"^(https?:|mailto:)", target):
            continue
        path_part, _, anchor = target.partition("#")
        linked = page if not path_part else (page.parent / path_part).resolve()
        if not linked.exists():
            problems.append(f"{rel(page)}: {target} -> {path_part} does not exist")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{rel(page)}: {target} -> no heading with anchor #{anchor} in {rel(linked)}")
    return problems


def repo_path_tokens(page):
    """Tokens inside code (spans and fences) that name a repository path."""
    prose, fences = split_markdown(page.read_text(encoding="utf-8"))
    tokens = set()
    for code in [*code_spans(prose), *fences]:
        for token in code.split():
            token = token.lstrip("([{\"'`").rstrip(")]},;\"'`")
            token = re.sub(r"::[\w.]+$", "", token)  # tests/x.py::test_name
            token = re.sub(r":\d+$", "", token).rstrip(".:")  # ser_hf/x.py:12, a sentence's full stop
            if token.startswith(REPO_PATH_PREFIXES) or token in REPO_FILES:
                tokens.add(token)
    return tokens


def missing_paths(page):
    problems = []
    for token in sorted(repo_path_tokens(page)):
        exists = any(ROOT.glob(token)) if any(c in token for c in "*?[") else (ROOT / token).exists()
        if not exists:
            problems.append(f"{rel(page)}: `{token}` does not exist")
    return problems


def doc_flags(page):
    """Every --flag in the page's code: inline spans and fenced blocks, not prose."""
    prose, fences = split_markdown(page.read_text(encoding="utf-8"))
    return {flag for code in [*code_spans(prose), *fences] for flag in FLAG.findall(code)}


def known_flags():
    """Every flag a ser_hf command accepts: recipe config fields (and --no_ forms), each command parser's options."""
    from ser_hf.cli import COMMANDS
    from ser_hf.config import config_fields

    known = {"--help", "--help_all"} | RUN_SH_FLAGS
    for field in config_fields():
        for name in (field, f"no_{field}"):
            known |= {f"--{name}", f"--{name.replace('_', '-')}"}
    for module_name in COMMANDS.values():
        # Import only modules that build a parser: `train` has none (its options are the config fields) and
        # importing it loads the whole training stack.
        source = Path(importlib.util.find_spec(module_name).origin).read_text(encoding="utf-8")
        if "def build_parser(" not in source:
            continue
        parser = importlib.import_module(module_name).build_parser(prog="ser-hf")
        known |= set(parser._option_string_actions)
    return known


def test_readme_is_short():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move detail to a docs/ page (limit {README_MAX_LINES})"


def test_relative_links_resolve():
    problems = [problem for page in PAGES for problem in broken_links(page)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_repository_paths_exist():
    problems = [problem for page in PAGES for problem in missing_paths(page)]
    assert not problems, "paths the docs name that are not in the repository:\n" + "\n".join(problems)


def test_flags_exist():
    known = known_flags() | OTHER_TOOLS_FLAGS
    unknown = {}
    for page in FLAG_PAGES:
        for flag in doc_flags(page) - known:
            unknown.setdefault(flag, []).append(rel(page))
    assert not unknown, "flags the docs show that no ser_hf command (or allowlisted tool) has:\n" + "\n".join(
        f"{flag}  ({', '.join(pages)})" for flag, pages in sorted(unknown.items()))


def test_flag_allowlist_is_used():
    used = set().union(*(doc_flags(page) for page in FLAG_PAGES))
    unused = sorted(OTHER_TOOLS_FLAGS - used)
    assert not unused, f"OTHER_TOOLS_FLAGS entries no page uses any more (remove them): {unused}"


def test_checks_see_what_they_should(tmp_path):
    # The helpers themselves: code is separated from prose, slugs are GitHub's, broken links are caught.
    page = tmp_path / "page.md"
    page.write_text("# Emotion + intensity: `--task multitask`\n\nprose --not_a_flag and `--a_flag`\n\n"
                    "```bash\nrun --fenced\n# not a heading\n```\n\n[ok](#emotion--intensity---task-multitask) "
                    "[bad](#nowhere) [gone](missing.md) [web](https://example.org) `[code](not/a/link.md)`\n",
                    encoding="utf-8")
    assert doc_flags(page) == {"--task", "--a_flag", "--fenced"}
    assert anchors(page) == {"emotion--intensity---task-multitask"}
    assert github_slug("What the demo's cross-validations show") == "what-the-demos-cross-validations-show"
    problems = "\n".join(broken_links(page))
    assert "#nowhere" in problems and "missing.md" in problems
    assert "emotion--intensity" not in problems and "example.org" not in problems and "not/a/link" not in problems


def test_the_module_page_lists_every_module():
    # docs/modules.md is "one line per module": a module added without its line, or a line left for a module that
    # moved, makes the page lie about where things live.
    listed = set(re.findall(r"`(ser_hf/[\w/]+\.py)`", (ROOT / "docs" / "modules.md").read_text(encoding="utf-8")))
    # Package __init__ files count only where they hold code (more than a docstring).
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "ser_hf").rglob("*.py")
               if p.name != "__init__.py" or "\ndef " in p.read_text() or "\nclass " in p.read_text()}
    assert not modules - listed, f"docs/modules.md does not list: {sorted(modules - listed)}"
    assert not listed - modules, f"docs/modules.md lists modules that do not exist: {sorted(listed - modules)}"
