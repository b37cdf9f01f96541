"""README.md and docs/*.md stay true: every command in their code blocks works as written.

What "works" means here, without running anything slow:
- `make T VAR=value ...`: T is a target of the Makefile, every VAR is one the Makefile uses, and `make -n` accepts
  the line; `RUN_ARGS="..."` holds valid `videogen submit` flags and `OVERLAY=` names a kustomize overlay.
- `videogen ...` / `.venv/bin/videogen ...`: a literal line parses with the real CLI parser (flags exist, values have
  the right type); a synopsis line (`[--flag X]`, `A | B`, `...`) names a real subcommand and only its real flags.
- `python -m MODULE` / `python SCRIPT.py`: the module or script exists, and every `--flag` is defined in its source.
- `cp SRC DST`, `kubectl apply -k DIR`: the repository paths exist (a remote kustomization URL is pinned, `?ref=vX`).
- anything else in a ```bash block must be one of the known tools below, so a new kind of command gets a check.

Which pages: README.md and every docs/*.md. docs/design.md is included: today its blocks are a directory layout
(unlabelled, no command in it) and ```python API signatures, which are not commands and are skipped; a command that
lands there later (a ```bash block, or a `make`/`videogen`/python line) is checked like the others.
"""

import argparse
import ast
import contextlib
import io
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from pipeline.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The pages this project's docs own outright (docs/design.md is the contracts page, edited with the code).
OWN_PAGES = [ROOT / "README.md", *(ROOT / "docs" / name for name in
                                   ("cluster.md", "performance.md", "quality.md", "limits.md", "usage.md"))]
MAKEFILE = (ROOT / "Makefile").read_text()
MAKE_TARGETS = set(re.findall(r"^([a-z-]+):", MAKEFILE, flags=re.M))
MAKE_VARS = set(re.findall(r"^([A-Z_]+)\s*[?:+]?=", MAKEFILE, flags=re.M)) | set(
    re.findall(r"\$\(([A-Z_]+)\)", MAKEFILE))
# Commands the docs show that are not this repository's (nothing to check beyond their repository paths).
OTHER_TOOLS = {"export", "$EDITOR", "kubectl", "mc", ".venv/bin/pip", ".venv/bin/tensorboard"}
COMMAND_START = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:(?:make|videogen|python3?)(?=\s|$)|\.venv/bin/)")
SYNOPSIS = re.compile(r"[\[\]|()]|\.\.\.")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _fenced_commands():
    """(page, line, strict) for each command line of each fenced block; strict: a ```bash/sh block."""
    for page in PAGES:
        text = page.read_text()
        for indent, lang, body in re.findall(r"^([ \t]*)```([\w-]*)\n(.*?)^[ \t]*```", text, flags=re.S | re.M):
            if lang not in ("", "bash", "sh", "shell"):
                continue  # ```python signatures, yaml, ...: not commands
            body = "\n".join(ln[len(indent):] if ln.startswith(indent) else ln for ln in body.splitlines())
            for line in body.replace("\\\n", " ").splitlines():
                line = re.split(r"\s#\s", " " + line + " ", maxsplit=1)[0].strip()
                if not line or (not lang and not COMMAND_START.match(line)):
                    continue
                yield pytest.param(page, line, bool(lang), id=f"{_rel(page)}: {line[:70]}")


def _inline_commands():
    """`make ...` and `videogen ...` spans in the prose (outside fenced blocks) of every page."""
    for page in PAGES:
        prose = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", page.read_text(), flags=re.S | re.M)
        for span in sorted(set(re.findall(r"`((?:\.venv/bin/)?videogen [a-z][^`]*|make [a-z][^`]*)`", prose))):
            yield pytest.param(page, span, id=f"{_rel(page)}: {span[:70]}")


def _words(line: str) -> list[str]:
    return shlex.split(re.sub(r"<[^>]*>", "PLACEHOLDER", line))


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in action.choices.values():  # run/submit add their flags on first use (they import kfp)
        getattr(command, "_ensure_populated", lambda: None)()
    return action.choices


def _parse(argv: list[str], what: str) -> argparse.Namespace:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{what}: {err.getvalue().strip().splitlines()[-1:]}")


def _check_videogen(line: str, args: list[str], literal: bool) -> None:
    commands = _subparsers()
    assert args and args[0] in commands, f"{line}: no videogen subcommand {args[:1]}"
    if literal and not SYNOPSIS.search(line) and "-h" not in args:
        _parse(args, line)
        return
    flags = {opt for action in commands[args[0]]._actions for opt in action.option_strings}
    for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*", line):
        assert flag in flags, f"{line}: videogen {args[0]} has no {flag}"


def _check_make(line: str, args: list[str], dry_run: bool) -> None:
    args = [a for a in args if a != "..."]
    targets = [a for a in args if "=" not in a and not a.startswith("-")]
    assert targets, f"{line}: name the target"
    for target in targets:
        assert target in MAKE_TARGETS, f"{line}: no make target {target}"
    for assignment in (a for a in args if "=" in a):
        name, value = assignment.split("=", 1)
        assert name in MAKE_VARS, f"{line}: the Makefile uses no variable {name}"
        if name == "OVERLAY":
            assert (ROOT / "manifests" / "overlays" / value).is_dir(), f"{line}: no overlay {value}"
        if name == "RUN_ARGS":
            _parse(["submit", "--host", "http://kfp", "--video", "v.mp4", *shlex.split(value)], line)
    if dry_run:
        proc = subprocess.run(["make", "-n", "-C", str(ROOT), *args], capture_output=True, text=True)
        assert proc.returncode == 0, f"{line}: {proc.stderr.strip()}"


def _check_python(line: str, args: list[str]) -> None:
    if args[:1] == ["-m"]:
        module = args[1]
        candidates = [ROOT / (module.replace(".", "/") + ".py"), ROOT / module.replace(".", "/") / "__main__.py"]
        source = next((p for p in candidates if p.exists()), None)
        if source is None:  # a third-party module such as pytest
            assert __import__("importlib").util.find_spec(module) is not None, f"{line}: no module {module}"
        rest = args[2:]
    else:
        source = ROOT / args[0]
        assert source.exists(), f"{line}: no script {args[0]}"
        rest = args[1:]
    for word in rest:
        if word.endswith(".py") or word.startswith(("tests/", "bench/")):
            assert (ROOT / word).exists(), f"{line}: no {word}"
    if source is not None:
        text = source.read_text()
        for flag in (w.split("=")[0] for w in rest if w.startswith("--")):
            assert f'"{flag}"' in text, f"{line}: {_rel(source)} defines no {flag}"


@pytest.mark.parametrize(("page", "line", "strict"), list(_fenced_commands()))
def test_every_command_in_a_code_block_works_as_written(page, line, strict):
    words = _words(line)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words.pop(0)  # environment assignments before a command (or a line that only assigns)
    if not words:
        return
    command, args = words[0], words[1:]
    if command == "make":
        _check_make(line, args, dry_run=True)
    elif command in ("videogen", ".venv/bin/videogen"):
        _check_videogen(line, args, literal=True)
    elif command in ("python", "python3", ".venv/bin/python"):
        _check_python(line, args)
    elif command == "cp":
        assert (ROOT / args[0]).exists(), f"{line}: no {args[0]}"
    elif command in OTHER_TOOLS:
        if command == "kubectl" and "-k" in args:
            target = args[args.index("-k") + 1]
            if target.startswith("https://"):  # someone else's kustomization: pinned to a release
                assert re.search(r"\?ref=v\d", target), f"{line}: pin the remote kustomization to a release"
            else:
                assert (ROOT / target).is_dir(), line
    else:
        assert not strict, f"{_rel(page)}: unknown command {command!r} in `{line}`: add a check for it here"


@pytest.mark.parametrize(("page", "span"), list(_inline_commands()))
def test_every_inline_command_names_real_targets_and_flags(page, span):
    words = _words(span)
    if words[0] == "make":
        _check_make(span, words[1:], dry_run=False)
    else:
        _check_videogen(span, words[1:], literal=False)


def test_the_readme_shows_every_make_target_users_need():
    """`make demo`, `make test`, the cluster targets and the development ones appear in the README's code blocks."""
    shown = set()
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        shown |= set(re.findall(r"^make ([a-z-]+)", block, flags=re.M))
    assert {"demo", "test", "images", "deploy", "run", "fetch", "compile", "lint", "bench", "setup"} <= shown
    proc = subprocess.run(["make", "-n", "-C", str(ROOT), "fetch", "RUN_ID=abc"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--run-id abc" in proc.stdout


def test_the_first_screen_has_the_two_setup_commands():
    """The README's first screen shows `make demo` and `make test`, and CI runs that same test command."""
    first_screen = "\n".join(README.splitlines()[:20])
    assert "make demo" in first_screen and "make test" in first_screen
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _pipeline_parameters() -> dict:
    """`video_generation`'s parameters and defaults, read from pipeline/pipeline.py without importing kfp."""
    tree = ast.parse((ROOT / "pipeline" / "pipeline.py").read_text())
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "video_generation")
    args = fn.args.args
    defaults = [None] * (len(args) - len(fn.args.defaults)) + list(fn.args.defaults)
    return {a.arg: (None if d is None else eval(compile(ast.Expression(d), "<default>", "eval"), {}))
            for a, d in zip(args, defaults)}


def test_the_configuration_table_has_every_pipeline_parameter_with_its_default():
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]*) \|", README, flags=re.M))
    params = _pipeline_parameters()
    assert set(params) <= set(rows), f"no README row for {sorted(set(params) - set(rows))}"
    run_flags = {opt for a in _subparsers()["run"]._actions for opt in a.option_strings}
    for name, default in params.items():
        cell = rows[name].strip().replace("`", "")
        first = cell.split()[0] if cell else ""
        if default is None:
            assert first == "required", (name, cell)
        elif isinstance(default, bool):
            assert first == str(default).lower(), (name, cell)
        elif isinstance(default, str):
            assert first == (default or "empty"), (name, cell)
        else:
            assert float(first) == default, (name, cell)
        assert "--" + name.replace("_", "-") in run_flags, f"videogen run has no flag for {name}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_links_between_the_pages_resolve(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{_rel(page)}: broken link {target}"
        if anchor and linked.suffix == ".md":
            slugs = {_slug(h) for h in re.findall(r"^#+ (.*)$", linked.read_text(), flags=re.M)}
            assert anchor in slugs, f"{_rel(page)}: no section #{anchor} in {_rel(linked)}"


@pytest.mark.parametrize("page", OWN_PAGES, ids=_rel)
def test_the_pages_speak_for_themselves(page):
    """No pointers outside the repository, no tracker numbers, and the original workflow called by its name."""
    text = page.read_text()
    for pattern in (r"FACTS\.md", r"\.\./shared", r"\bissues? #?\d+", r"\bthe seed\b", r"\bseed's\b"):
        assert not re.search(pattern, text, flags=re.I), f"{_rel(page)}: {pattern}"
    assert README.count("Spell") <= 1


def test_measured_figures_name_the_machine_kind():
    """CPU figures were measured on a 2-core EPYC with AVX512_BF16 (native bf16); each page that quotes them says so."""
    for name in ("README.md", "docs/performance.md", "docs/quality.md"):
        assert "2-core EPYC, AVX512_BF16" in (ROOT / name).read_text(), name
