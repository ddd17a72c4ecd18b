"""Install a second google-genai (default 3.6.1) beside the venv's pinned 3.4.0, for bench/throughput.py.

Usage: ``.venv/bin/python scripts/install-bench-genai.py [--version 3.6.1] [--target DIR]``
(prints the directory to put on ``PYTHONPATH``; bench/throughput.py calls this itself).

Why a separate directory and not the venv: the project pins google-genai 3.4.0 (its tests run
Google's SDK of that version against the emulator); the bench also measures the newest release
in the same run. So the newer SDK goes into ``.bench-deps/genai-VERSION`` with ``pip install
--target ... --no-deps``, and only those of its requirements that the venv does not already
satisfy are added there too (also ``--no-deps``, so the venv's own packages are used for
everything else). The benchmark's SDK worker then runs with that directory first on
``PYTHONPATH``: ``google`` is a namespace package, so ``google.genai`` comes from the directory
while ``google.auth`` and the rest come from the venv.

Idempotent: a directory that already holds that version, with its requirements satisfied, is
left as it is.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.version import Version
except ImportError:  # pip always carries a copy
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.version import Version  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VERSION = "3.6.1"


def target_dir(version: str) -> Path:
    return ROOT / ".bench-deps" / f"genai-{version}"


def pip_install(target: Path, specs: list[str]) -> None:
    """One pip run for all specs: ``--target --upgrade`` replaces whole top-level directories, so
    packages sharing the ``google`` namespace must land in the same run or one would wipe the other."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--upgrade", "--target", str(target), *specs],
        check=True,
    )


def installed(target: Path) -> dict[str, Version]:
    """Distributions (normalised name -> version) visible with ``target`` first on the path."""
    out: dict[str, Version] = {}
    for dist in metadata.distributions(path=[str(target), *sys.path]):
        name = dist.metadata["Name"].lower().replace("_", "-")
        out.setdefault(name, Version(dist.version))
    return out


def missing_requirements(target: Path, version: str) -> list[Requirement]:
    """google-genai's own requirements (no extras) that neither ``target`` nor the venv satisfies."""
    dist = next(metadata.distributions(path=[str(target)], name="google-genai"))
    have = installed(target)
    missing = []
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        got = have.get(req.name.lower().replace("_", "-"))
        if got is None or not req.specifier.contains(got, prereleases=True):
            missing.append(req)
    return missing


def ensure(version: str = DEFAULT_VERSION, target: Path | None = None) -> Path:
    """Install google-genai ``version`` (and what the venv lacks for it) into ``target``; return it."""
    target = target or target_dir(version)
    try:
        dist = next(metadata.distributions(path=[str(target)], name="google-genai"), None)
        ok = dist is not None and dist.version == version
    except Exception:  # a broken partial install: start again
        ok = False
    specs = [f"google-genai=={version}"]
    if not ok:
        target.mkdir(parents=True, exist_ok=True)
        print(f"installing google-genai=={version} into {target}", file=sys.stderr)
        pip_install(target, specs)
    for _ in range(2):  # check, install what is missing (in one pip run with google-genai), check again
        missing = missing_requirements(target, version)
        if not missing:
            return target
        for req in missing:
            print(f"  + {req} (the venv's does not satisfy google-genai {version})", file=sys.stderr)
        specs += [str(req) for req in missing]
        pip_install(target, specs)
    raise SystemExit(f"could not satisfy google-genai {version}'s requirements: {missing}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default=DEFAULT_VERSION, help=f"google-genai version ({DEFAULT_VERSION})")
    parser.add_argument("--target", type=Path, default=None, help="directory (default .bench-deps/genai-VERSION)")
    args = parser.parse_args()
    print(ensure(args.version, args.target))


if __name__ == "__main__":
    main()
