"""Run reproduction protocols on a GPU for a fixed time, then test each at its last checkpoint.

For a GPU that is at hand for minutes, not hours, on a machine that starts empty each time. This
runs several protocols of a chapter's ``reproduce.py`` on one GPU in PyTorch (``--framework``), each
as its own process and all at once, stops them at a deadline, tests each at its last checkpoint (the
protocol's command with ``--episodes <checkpoint>``: a partial run, stated as such in the results
table), and packs each run folder (checkpoint, results JSON, curve, log) into one ``.tar.gz`` under
``--pack``. Unpacked into ``--runs`` on the next machine, a run resumes exactly where it stopped.

What the GPU machine needs in its copy of the repository (both folders are ignored by git)::

    mkdir -p data runs/device && cp -r ../shared/data/omniglot data/
    tar -xzf <a pack from an earlier machine> -C runs/device     # to continue an earlier run

and the command there::

    PYTHONUNBUFFERED=1 python3 -m tools.device_runs --minutes 7 --pack <folder that comes back> \\
        maml-5w1s-maxpool fomaml-5w1s metasgd-5w1s

Afterwards copy the packs' results JSONs into ``results/<chapter>/`` and run ``make results``.
The deadline loses each protocol's episodes since its last checkpoint (written every ``--eval-every``);
choose ``--minutes`` so that the tests after it fit the time the machine is there too.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from common.cli import run
from common.errors import ConfigError
from common.weights import load_weights


def protocols_of(chapter: str) -> dict:
    """name -> Protocol of ``chapters.<chapter>.reproduce``."""
    module = importlib.import_module(f"chapters.{chapter}.reproduce")
    return {protocol.name: protocol for protocol in module.PROTOCOLS}


def checkpoint_episodes(folder: Path) -> int:
    """The episodes (meta-iterations) a run folder's checkpoint has trained; 0 without one."""
    checkpoint = folder / "checkpoint.npz"
    return int(load_weights(checkpoint)[1]["episode"]) if checkpoint.exists() else 0


def run_folder(out: Path) -> Path | None:
    """The run folder a protocol's command made under its own ``--out`` (None before its first checkpoint)."""
    folders = [path.parent for path in out.glob("*/checkpoint.npz")]
    return folders[0] if len(folders) == 1 else None


def train_until(commands: dict, outs: dict, seconds: float) -> dict:
    """Start every protocol's training command at once; stop those still running after ``seconds``.
    Returns name -> exit status (None: stopped at the deadline)."""
    processes = {}
    for name, command in commands.items():
        with open(outs[name] / "log.txt", "a") as log:
            print(f"$ {' '.join(command)}", file=log, flush=True)
            processes[name] = subprocess.Popen([sys.executable, *command[1:]], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(p.poll() is None for p in processes.values()):
        time.sleep(1)
    ended = {}
    for name, process in processes.items():
        stopped = process.poll() is None
        if stopped:
            process.send_signal(signal.SIGTERM)  # checkpoints are written by rename: the last one stays whole
            process.wait()
        ended[name] = None if stopped else process.returncode
    return ended


def with_episodes(command: list[str], episodes: int) -> list[str]:
    """The command with ``--episodes`` set to ``episodes`` (a protocol's command names it once)."""
    command = list(command)
    command[command.index("--episodes") + 1] = str(episodes)
    return command


def tail(path: Path, lines: int = 5) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m tools.device_runs", description=__doc__.split("\n")[0])
    parser.add_argument("protocols", nargs="+", help="names of the chapter's protocols (its reproduce.py)")
    parser.add_argument("--chapter", default="optimization")
    parser.add_argument("--minutes", type=float, default=7.0, help="training time of the protocols, side by side")
    parser.add_argument("--framework", default="torch")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--runs", default="runs/device",
                        help="one --out folder per protocol below it (a run found there is resumed)")
    parser.add_argument("--pack", default=None, help="folder for one <protocol>.tar.gz each (e.g. $OUT)")
    parser.add_argument("--extra", default="", help="options appended to every command, which override the "
                                                   "protocol's (for a quick check, e.g. '--meta-batch 2')")
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        raise ConfigError(f"--minutes must be above 0 (the training time of every protocol), got {args.minutes}")
    known = protocols_of(args.chapter)
    unknown = [name for name in args.protocols if name not in known]
    if unknown:
        raise ConfigError(f"no protocol {', '.join(unknown)} in chapters/{args.chapter}/reproduce.py; "
                          f"choose from {', '.join(known)}")
    several = [name for name in args.protocols if len(known[name].tests) != 1]
    if several:
        raise ConfigError(f"{', '.join(several)} test one model in several settings; run them with "
                          f"`python -m chapters.{args.chapter}.reproduce --run NAME` instead")

    outs = {name: Path(args.runs) / name for name in args.protocols}
    commands = {}
    for name, out in outs.items():
        out.mkdir(parents=True, exist_ok=True)
        test, = known[name].tests.values()
        commands[name] = known[name].command(args.framework, (*test, "--device", args.device, *args.extra.split()),
                                             str(out))
    ended = train_until(commands, outs, args.minutes * 60)

    summary = []
    for name, status in ended.items():
        folder, log = run_folder(outs[name]), outs[name] / "log.txt"
        episodes = checkpoint_episodes(folder) if folder else 0
        row = {"protocol": name, "episodes": episodes, "stopped": status is None}
        if status not in (None, 0):
            row["error"] = f"exited with status {status}: {tail(log)}"
        elif episodes and status is None:  # stopped: test the last checkpoint, training no further
            with open(log, "a") as stream:
                command = with_episodes(commands[name], episodes)
                print(f"$ {' '.join(command)}", file=stream, flush=True)
                tested = subprocess.run([sys.executable, *command[1:]], stdout=stream, stderr=subprocess.STDOUT)
            if tested.returncode:
                row["error"] = f"the test exited with status {tested.returncode}: {tail(log)}"
        results = sorted(folder.glob("*_*T*.json")) if folder else []
        if results:
            row["result"] = results[-1].name
        if args.pack:
            Path(args.pack).mkdir(parents=True, exist_ok=True)
            with tarfile.open(Path(args.pack) / f"{name}.tar.gz", "w:gz") as pack:
                pack.add(outs[name], arcname=name)
        summary.append(row)
        print(f"{name}: {episodes:,} meta-iterations" + (f", {row['result']}" if "result" in row else "")
              + (f"; {row['error']}" if "error" in row else ""), flush=True)
    return summary


if __name__ == "__main__":
    run(main)
