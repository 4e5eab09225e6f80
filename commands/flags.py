"""One flag vocabulary for every command: the same name means the same thing everywhere.

Each shared flag is one function here, so ``eval``, ``tune``, ``probe``, ``speedup``
and ``sweep`` spell it alike.  Every multi-word flag is accepted with dashes (shown in
``--help``) and with underscores (the old system's spelling, hidden), and a command
may keep its own older names as hidden aliases (``--workload-size`` for ``--count``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from engines.registry import backend_names

# argparse keywords an alias must not repeat: it only adds spellings of the primary flag
_PRIMARY_ONLY = ("default", "help", "required", "metavar")


def spellings(name: str) -> tuple[str, str]:
    """``"max_new_tokens"`` -> ``("--max-new-tokens", "--max_new_tokens")``."""
    return "--" + name.replace("_", "-"), "--" + name.replace("-", "_")


def option(
    parser: argparse.ArgumentParser, name: str, *, aliases: Sequence[str] = (), **kwargs: Any
) -> None:
    """Add flag ``name`` (dashed in ``--help``), its underscore spelling and ``aliases``.

    The other spellings are a hidden second action on the same ``dest`` whose
    default is suppressed, so the primary flag's default stands unless one is given.
    """
    dashed, underscored = spellings(name)
    dest = kwargs.setdefault("dest", name.replace("-", "_"))
    parser.add_argument(dashed, **kwargs)
    hidden = [s for s in (underscored, *aliases) if s != dashed]
    if hidden:
        extra = {k: v for k, v in kwargs.items() if k not in _PRIMARY_ONLY}
        parser.add_argument(
            *hidden,
            **extra | {"dest": dest, "default": argparse.SUPPRESS, "help": argparse.SUPPRESS},
        )


def add_model(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    option(
        parser,
        "model",
        required=required,
        help="model id or path (e.g. synthetic:small, Qwen/Qwen2.5-Math-1.5B)",
    )


def add_dataset(
    parser: argparse.ArgumentParser, *, required: bool = True, default: str | None = None
) -> None:
    option(
        parser,
        "dataset",
        required=required,
        default=default,
        help="gsm8k, math500, svamp, gsm_hard or synthetic"
        + (f" (default: {default})" if default else ""),
    )


def add_count(
    parser: argparse.ArgumentParser,
    *,
    default: int | None,
    help: str,
    aliases: Sequence[str] = (),
) -> None:
    """``--count N``: how many problems (old names: ``--workload-size``, ``--num-problems``)."""
    option(parser, "count", type=int, default=default, metavar="N", help=help, aliases=aliases)


def add_backend(
    parser: argparse.ArgumentParser,
    *,
    multiple: bool = False,
    default: str | None = None,
    help: str,
    aliases: Sequence[str] = (),
) -> None:
    """``--backend NAME`` (``NAME ...`` where a command takes several), from the engine table."""
    names = backend_names()
    option(
        parser,
        "backend",
        choices=names,
        nargs="+" if multiple else None,
        default=default,
        metavar="NAME",
        help=f"{help}; one of {', '.join(names)}",
        aliases=aliases,
    )


def add_max_new_tokens(
    parser: argparse.ArgumentParser, *, default: int | None, shown: int | None = None
) -> None:
    """``shown``: the default ``--help`` names when ``default`` is ``None`` (set elsewhere)."""
    shown = f" (default: {default if default is not None else shown})"
    option(
        parser,
        "max_new_tokens",
        type=int,
        default=default,
        metavar="N",
        help="generation budget per problem" + shown,
    )


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    option(
        parser,
        "data_dir",
        metavar="DIR",
        help="folder with <dataset>/test.jsonl (default: $INFERTUNE_DATA_DIR, ...)",
    )


def add_results_dir(
    parser: argparse.ArgumentParser,
    *,
    default: str | None,
    help: str,
    aliases: Sequence[str] = (),
) -> None:
    """``--results-dir DIR``, also ``--out DIR``: where a command writes what it produces."""
    option(
        parser,
        "results_dir",
        default=default,
        metavar="DIR",
        help=help,
        aliases=("--out", *aliases),
    )


def add_profiles_dir(parser: argparse.ArgumentParser, *, aliases: Sequence[str] = ()) -> None:
    option(
        parser,
        "profiles_dir",
        metavar="DIR",
        aliases=aliases,
        help="profiles root (default: $INFERTUNE_PROFILES_DIR, else profiles/)",
    )


def add_seed(parser: argparse.ArgumentParser, *, default: int | None, help: str) -> None:
    option(parser, "seed", type=int, default=default, help=help)


def add_dtype(parser: argparse.ArgumentParser, *, default: str | None = None) -> None:
    option(
        parser,
        "dtype",
        default=default,
        help="model dtype: auto (float32 on CPU, bfloat16 on GPU), float32, bfloat16,"
        " float16" + (f" (default: {default})" if default else ""),
    )


def add_prompt(parser: argparse.ArgumentParser) -> None:
    """``--chat-template auto|on|off``, ``--system-prompt TEXT``, ``--stop STRING`` (repeatable).

    ``--apply-chat-template`` (the old flag) is a hidden spelling of ``on``, and
    ``--no-chat-template`` of ``off``.  Not given is ``None``: "auto" for a new run
    (on when the model's tokenizer has a chat template), a resumed run's own value.
    """
    option(
        parser,
        "chat_template",
        choices=("auto", "on", "off"),
        help="send prompts as chat messages through the model's chat template; auto (default):"
        " on when the tokenizer has one (synthetic: models: off)",
    )
    for spelling, value in (
        ("--apply-chat-template", "on"),
        ("--apply_chat_template", "on"),
        ("--no-chat-template", "off"),
        ("--no_chat_template", "off"),
    ):
        parser.add_argument(
            spelling,
            dest="chat_template",
            action="store_const",
            const=value,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
    option(
        parser,
        "system_prompt",
        metavar="TEXT",
        help="a system message before each problem (needs the chat template)",
    )
    option(
        parser,
        "stop",
        action="append",
        metavar="STRING",
        help="end generation at this string, repeatable (default: EOS and the length limit)",
    )


def prompt_options(args: argparse.Namespace) -> dict[str, Any]:
    """The prompt flags as the libraries take them: ``chat_template`` is ``None`` (auto),
    ``True`` or ``False``; ``stop`` a tuple (``None`` when not given)."""
    from evaluation.prompts import chat_template_choice

    return {
        "chat_template": chat_template_choice(getattr(args, "chat_template", None)),
        "system_prompt": args.system_prompt,
        "stop": tuple(args.stop) if args.stop else None,
    }
