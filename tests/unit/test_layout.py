"""The code stays readable: no function in videogen/ is longer than MAX_FUNCTION_LINES."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_FUNCTION_LINES = 60

# "path:function" -> why it may be longer. Remove an entry as soon as its function is split.
EXCEPTIONS: dict[str, str] = {}


def _long_functions() -> dict[str, int]:
    found = {}
    for path in sorted((ROOT / "videogen").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found[f"{path.relative_to(ROOT).as_posix()}:{node.name}"] = lines
    return found


def test_no_function_in_videogen_is_longer_than_the_limit():
    """Every function (nested ones too) fits in MAX_FUNCTION_LINES lines, or is listed in EXCEPTIONS with a reason."""
    too_long = {name: lines for name, lines in _long_functions().items() if name not in EXCEPTIONS}
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_every_exception_is_still_needed():
    """An exception whose function got short (or was removed) is dropped from the list."""
    stale = set(EXCEPTIONS) - set(_long_functions())
    assert not stale, f"no longer over {MAX_FUNCTION_LINES} lines, remove from EXCEPTIONS: {sorted(stale)}"
