"""Compile the engine's pure core with mypyc, in place (see ``gigafactory._native``); then write the manifest.

    python scripts/build_native.py          # build (about 1-2 minutes on 2 cores)
    python scripts/build_native.py --clean  # remove the compiled modules: the engine runs as pure Python

Needs mypy (which carries mypyc), setuptools and a C compiler. The compiled modules are what ``make native``
leaves beside the sources; they are used only while their sources are unchanged.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))
os.environ["GIGAFACTORY_PURE"] = "1"  # this process only reads the module list: no word about a stale build

from gigafactory import _native  # noqa: E402


def clean() -> int:
    removed = 0
    for module in (*_native.MODULES, _native.GROUP + "__mypyc"):
        base = SRC.joinpath(*module.split("."))
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = base.with_suffix(suffix)
            if path.exists():
                path.unlink()
                removed += 1
    _native.MANIFEST.unlink(missing_ok=True)
    return removed


class SourceError(Exception):
    """mypyc's type check refused the source (its errors are printed above)."""


def build() -> None:
    from mypyc.build import mypycify
    from setuptools import setup

    clean()
    hashes = _native.source_hashes()  # before compiling: an edit made meanwhile makes the build stale, not wrong
    files = [str(_native.source_of(m).relative_to(ROOT)) for m in _native.MODULES]
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            extensions = mypycify(
                ["--config-file", "pyproject.toml", *files], group_name=_native.GROUP, target_dir=str(Path(tmp) / "c")
            )
        except SystemExit as exc:  # mypyc exits after printing the type errors it found
            where = "listed before this line (make native keeps them in .venv/native.log)"
            raise SourceError(f"mypyc found errors in the source (exit {exc.code}), {where}") from exc
        setup(
            name="gigafactory-native",
            package_dir={"": "src"},
            ext_modules=extensions,
            script_args=["-q", "build_ext", "--inplace", "--parallel", str(os.cpu_count() or 1),
                         "--build-temp", str(Path(tmp) / "o")],
        )  # fmt: skip
    _native.MANIFEST.write_text(json.dumps({"sources": hashes}, indent=1) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", action="store_true", help="remove the compiled modules")
    ap.add_argument("--sources", action="store_true", help="print the compiled modules' sources (for make)")
    args = ap.parse_args()
    if args.sources:
        print(" ".join(str(_native.source_of(m).relative_to(ROOT)) for m in _native.MODULES))
        return 0
    if args.clean:
        removed = clean()
        print(
            f"removed the compiled engine ({removed} files); it runs as pure Python" if removed else "nothing to remove"
        )
        return 0
    try:
        build()
    except SourceError as exc:
        clean()
        print(f"could not compile the engine: {exc}; it runs as pure Python, the same but slower", file=sys.stderr)
        return 1
    except BaseException as exc:  # a compiler's failure reaches here as setuptools' SystemExit
        clean()
        print(
            f"could not compile the engine ({type(exc).__name__}: {exc}); it runs as pure Python, the same but"
            " slower. mypyc needs a C compiler and Python's headers (Debian: gcc python3-dev).",
            file=sys.stderr,
        )
        return 1
    print(f"compiled {len(_native.MODULES)} modules with mypyc: `gigafactory version` says which engine runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
