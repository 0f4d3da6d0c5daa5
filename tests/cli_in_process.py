"""Run the real CLI (``train.py`` as ``__main__``) once per command line, all in one process.

python tests/cli_in_process.py < argvs.json > results.jsonl

Reads a JSON list of argument lists; for each, runs ``train.py`` as ``python train.py <args>``
does (as ``__main__``, with the same argv, in the same working directory) and writes one JSON
line: the exit status the shell would see (null: no exit within a minute) and everything the
run printed. An exception
that escapes it is printed with its traceback and exits 1, as the interpreter would.
Many bad inputs then cost one interpreter start-up instead of one each; each input still goes
through Hydra and ``main``.
"""

from __future__ import annotations

import contextlib
import io
import json
import runpy
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType

from hydra.core.global_hydra import GlobalHydra

#: The CLI, run as ``__main__`` each time: Hydra finds ``conf/`` beside the script, as it does
#: for ``python train.py``, and the script's own set-up runs again for each command line.
TRAIN = Path(__file__).resolve().parents[1] / "train.py"

#: Seconds one command line may take before it counts as a hang.
HANG_S = 60


class Hang(BaseException):
    """The alarm went off: this command line has not exited in :data:`HANG_S` seconds (a
    ``BaseException``, so that no handler of Hydra's or the project's takes it for an error)."""


def _hang(signum: int, frame: FrameType | None) -> None:
    """SIGALRM's handler: stop the command line that is running."""
    raise Hang


def run_once(args: list[str]) -> tuple[int | None, str]:
    """Exit status (None: it hung) and all output of ``python train.py args``, run here."""
    sys.argv = [str(TRAIN), *args]
    GlobalHydra.instance().clear()  # each command line starts from a fresh Hydra, as a new process
    output = io.StringIO()
    code: int | None = 0
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        signal.alarm(HANG_S)
        try:
            runpy.run_path(str(TRAIN), run_name="__main__")
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            if done.code is not None and not isinstance(done.code, int):
                print(done.code, file=sys.stderr)  # what the interpreter prints for it
        except Hang:
            code = None
        except BaseException:  # what an uncaught exception does to a process
            traceback.print_exc()
            code = 1
        finally:
            signal.alarm(0)
    return code, output.getvalue()


def main() -> None:
    """One JSON line per command line read from stdin."""
    signal.signal(signal.SIGALRM, _hang)
    for args in json.load(sys.stdin):
        code, output = run_once(args)
        sys.stdout.write(json.dumps({"args": args, "code": code, "output": output}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
