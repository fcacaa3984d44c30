"""First run, as a newcomer meets it: ``bash scripts/run.sh --no-app`` in a fresh clone with an empty home folder,
timed to its first ranked answer and to its end, beside the baseline measured in the same run: a bare
``pip install -r requirements.txt`` into a fresh virtual environment (what any Python project of these dependencies
costs before it does anything).

The clone is of the current checkout's HEAD (``git clone``), so uncommitted changes are not measured. Each of the
two runs gets an empty home of its own (holding only pip's configuration, which names this machine's package
registry), so pip's cache is empty for both (``--keep-home``: both use your home and its warm cache). The first
answer is the moment ``run.sh`` prints the demo query's first ranked line.

    python benchmarks/first_run.py [--work /tmp/attribution_first_run] [--keep-home]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: A ranked line of ``attribute demo``'s first query: rank, influence in percent.
RANKED = re.compile(r"^\s+1\s+\d+\.\d+%")


def timed(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, float | None, int]:
    """(total seconds, seconds to the first ranked line or None, exit code); output to ``log``."""
    started = time.perf_counter()
    first = None
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if first is None and RANKED.match(line):
                first = time.perf_counter() - started
        code = proc.wait()
    return time.perf_counter() - started, first, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/attribution_first_run"))
    parser.add_argument("--keep-home", action="store_true", help="use your own home (pip's cache) instead")
    args = parser.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)
    python = shutil.which("python3.11", path=env["PATH"]) or shutil.which("python3", path=env["PATH"]) or "python3"

    def with_home(name: str) -> dict[str, str]:
        home = Path.home() if args.keep_home else args.work / name
        home.mkdir(exist_ok=True)
        machine_config = Path.home() / ".config" / "pip" / "pip.conf"
        if not args.keep_home and machine_config.is_file():  # where this machine's package registry is: not a cache
            (home / ".config" / "pip").mkdir(parents=True, exist_ok=True)
            shutil.copy(machine_config, home / ".config" / "pip" / "pip.conf")
        return {**env, "HOME": str(home)}

    bare = args.work / "bare"
    bare.mkdir()
    shutil.copy(ROOT / "requirements.txt", bare / "requirements.txt")
    bare_env = with_home("home_bare")
    venv_s, _, code = timed([python, "-m", "venv", ".venv"], bare, bare_env, args.work / "bare_venv.log")
    pip = [str(bare / ".venv" / "bin" / "python"), "-m", "pip", "install", "-q", "-r", "requirements.txt"]
    pip_s, _, code2 = timed(pip, bare, bare_env, args.work / "bare_pip.log")
    if code or code2:
        sys.exit(f"the baseline failed (exit {code or code2}); see {args.work}/bare_pip.log")
    shutil.rmtree(bare)

    clone = args.work / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    run_s, first_s, code = timed(
        ["bash", "scripts/run.sh", "--no-app"], clone, with_home("home_run"), args.work / "run.log"
    )
    if code:
        sys.exit(f"scripts/run.sh failed (exit {code}); see {args.work}/run.log")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True)
    rows = [
        ("baseline: a fresh venv + `pip install -r requirements.txt`", venv_s + pip_s, None),
        ("`bash scripts/run.sh --no-app` in a fresh clone", run_s, first_s),
    ]
    lines = ["| run | total | to the first ranked answer |", "|---|---:|---:|"]
    for name, total, first in rows:
        lines.append(f"| {name} | {total / 60:.1f} min | {'' if first is None else f'{first / 60:.1f} min'} |")
    lines += [
        "",
        f"commit {commit.stdout.strip()}, {'your home (pip cache warm)' if args.keep_home else 'an empty home each'}, "
        f"{platform.machine()} {os.cpu_count()} cores, alone, {time.strftime('%Y-%m-%d')}",
    ]
    out = ROOT / "benchmarks" / "results" / "first_run"
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
