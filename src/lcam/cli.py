"""The ``lcam`` command line: it parses arguments and dispatches, nothing else.

::

    lcam --version                                  the installed version
    lcam presets [--show NAME]                      list presets / print one resolved
    lcam train PRESET --group G --seed K --out DIR  one run [--nproc N: on N processes]
    lcam sweep PRESET --out DIR [--seeds N] [--jobs J] [--groups a,b] [--control]
    lcam sweep PRESET --out DIR --print-commands    one shell command per run (clusters)
    lcam demo [--out DIR]                           digits: every group, 3 seeds, report
    lcam report DIR [DIR ...] [--out OUT]           tables, tests and figures

Settings of a preset are overridden with the flags below (``--epochs 1``, ``--model
wrn-16-4``, ...) or with ``--set KEY=VALUE`` for any setting (``lcam presets --show
NAME`` lists them). ``--model`` and ``--data`` also take ``package.module:function``
to run the same protocol on your own model and data (see
:mod:`lcam.harness.components`).

Multi-GPU: ``torchrun --nproc_per_node=N -m lcam train ...`` or ``lcam train ...
--nproc N`` (which launches torchrun); see ``docs/SCALE_OUT.md``.

Exit statuses: :mod:`lcam.harness.exitstatus` (also in ``lcam --help``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from lcam._version import __version__

__all__ = ["build_parser", "main"]

_EXIT_STATUSES = """\
exit status:
  0  done (sweep: every run finished)
  1  sweep: a run failed; any command: an unexpected error
  2  refused before anything ran (arguments, names, options, the run directory)
  3  the run directory is held by another process (train); sweep: runs held
     elsewhere were skipped, none failed
  4  a file could not be written (no space, read-only, I/O error); the files
     written before are intact
  75 stopped by SIGTERM, SIGINT or SIGUSR1 with a checkpoint of where it was
     (sweep: of every running run); rerun with --resume (the same sweep)
"""

# Flags that override one preset setting each: (flag, setting name, help).
_OVERRIDE_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--epochs", "epochs", "number of epochs"),
    ("--model", "model", "model name or package.module:function"),
    ("--data", "data", "data set name or package.module:function"),
    ("--data-root", "data_root", "directory holding the data set files"),
    ("--batch-size", "batch_size", "global training batch size"),
    ("--eval-batch-size", "eval_batch_size", "evaluation batch size"),
    ("--lr", "lr", "initial learning rate"),
    ("--weight-decay", "weight_decay", "weight decay"),
    ("--schedule", "schedule", "step, cdlr, cosine or constant"),
    ("--train-subset", "train_subset", "train on at most this many samples (smoke runs)"),
    ("--test-subset", "test_subset", "evaluate on at most this many samples"),
    ("--device", "device", "auto, cpu, cuda, cuda:1, ..."),
    ("--amp", "amp", "none or bf16 (bf16 autocast)"),
    ("--threads", "threads", "CPU threads for torch"),
    ("--batch-norm", "batch_norm",
     "plain or sync: BatchNorm statistics per process or over the global batch (DDP)"),
)
# Boolean settings switched on by a bare flag.
_SWITCHES: tuple[tuple[str, str, str], ...] = (
    ("--channels-last", "channels_last", "channels-last memory format (CUDA convnets)"),
    ("--tensorboard", "tensorboard", "also write TensorBoard event files"),
)


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("overrides of preset settings")
    for flag, key, text in _OVERRIDE_FLAGS:
        group.add_argument(flag, dest=f"override_{key}", metavar="VALUE", help=text)
    for flag, key, text in _SWITCHES:
        group.add_argument(flag, dest=f"override_{key}", action="store_const", const="true",
                           help=text)
    group.add_argument("--control", action="store_true",
                       help="also run the matched-momentum control of every LCAM group")
    group.add_argument("--set", dest="set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any setting (repeatable): e.g. --set gamma=0.1, "
                            "--set model_options.pretrained=/path, --set control=true")


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    """The ``key -> text`` overrides given by the flags and every ``--set``."""
    from lcam.harness.config import ConfigError

    overrides: dict[str, str] = {}
    for _flag, key, _text in _OVERRIDE_FLAGS + _SWITCHES:
        value = getattr(args, f"override_{key}", None)
        if value is not None:
            overrides[key] = value
    for item in args.set:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value
    if getattr(args, "control", False):
        overrides["control"] = "true"
    return overrides


def build_parser(*, report_arguments: bool = True) -> argparse.ArgumentParser:
    """The ``lcam`` argument parser with all subcommands.

    ``report_arguments=False`` leaves the ``report`` subcommand without its arguments,
    which spares every other command the import of the report's plotting stack.
    """
    # No abbreviations: a mistyped option (``--epoch``) must fail, not guess.
    parser = argparse.ArgumentParser(
        prog="lcam", allow_abbrev=False,
        description="Loss-Controlled Asymmetric Momentum: rerun the paper's experiments and "
                    "report them.",
        epilog=_EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"lcam {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, allow_abbrev=False, epilog=_EXIT_STATUSES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)

    presets = command("presets", help="list presets or show one resolved")
    presets.add_argument("--show", metavar="NAME", help="print the resolved preset as JSON")
    _add_overrides(presets)

    train = command("train", help="run one training run")
    train.add_argument("preset")
    train.add_argument("--group", required=True, help="momentum group, e.g. m0.95_0.9")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, required=True, help="output root directory")
    train.add_argument("--resume", action="store_true",
                       help="continue an unfinished run from its checkpoint")
    train.add_argument("--overwrite", action="store_true",
                       help="replace whatever the run directory holds")
    train.add_argument("--no-progress", dest="progress", action="store_false",
                       help="one line per epoch instead of progress bars")
    train.add_argument("--nproc", type=int, metavar="N",
                       help="train data-parallel on N processes of this machine (launches "
                            "torchrun; one GPU each with --device cuda)")
    _add_overrides(train)

    sweep = command("sweep", help="run every group x seed of a preset")
    sweep.add_argument("preset")
    sweep.add_argument("--out", type=Path, required=True, help="output root directory")
    sweep.add_argument("--seeds", type=int, help="seeds 0..N-1 (default: the preset's)")
    sweep.add_argument("--jobs", type=int, default=1, help="runs at a time (processes)")
    sweep.add_argument("--groups", help="comma-separated group names (default: the preset's)")
    sweep.add_argument("--overwrite", action="store_true",
                       help="start every run over instead of skipping or resuming")
    sweep.add_argument("--print-commands", action="store_true",
                       help="print one self-contained shell command per run instead of "
                            "running them (for a cluster scheduler)")
    sweep.add_argument("--nproc", type=int, metavar="N",
                       help="every run trains data-parallel on N processes (torchrun)")
    _add_overrides(sweep)

    demo = command("demo", help="digits: every group x 3 seeds, then the report")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"),
                      help="output directory (default: runs/demo)")
    demo.add_argument("--jobs", type=int, default=None,
                      help="worker processes (default: min(2, CPU count))")

    report = command("report", help="tables, tests and figures from run dirs")
    if report_arguments:
        from lcam.report.command import add_arguments

        add_arguments(report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lcam`` console script; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(report_arguments=arguments[:1] == ["report"]).parse_args(arguments)
    from lcam.harness import commands

    # Refusals, a run held elsewhere and failed writes end as one line and an exit
    # status (lcam.harness.exitstatus), as in a sweep's workers.
    return commands.run_guarded(args.command, lambda: _dispatch(args, arguments))


def _dispatch(args: argparse.Namespace, arguments: list[str]) -> int:
    from lcam.harness import commands

    if args.command == "presets":
        return commands.presets(args.show, _overrides(args))
    if args.command == "train" and args.nproc not in (None, 1):
        return commands.launch_train(args.nproc, arguments[1:], preset_name=args.preset,
                                     group=args.group, seed=args.seed,
                                     overrides=_overrides(args), out=args.out)
    if args.command == "train":
        return commands.train(args.preset, group=args.group, seed=args.seed, out=args.out,
                              overrides=_overrides(args), resume=args.resume,
                              overwrite=args.overwrite, progress=args.progress)
    if args.command == "sweep":
        groups = args.groups.split(",") if args.groups else None
        return commands.sweep(args.preset, out=args.out, overrides=_overrides(args),
                              seeds=args.seeds, jobs=args.jobs, groups=groups,
                              overwrite=args.overwrite, nproc=args.nproc,
                              print_commands=args.print_commands)
    if args.command == "demo":
        return commands.demo(out=args.out, jobs=args.jobs)
    if args.command == "report":
        from lcam.report.command import run

        return run(args)
    raise AssertionError(f"unhandled command {args.command!r}")
