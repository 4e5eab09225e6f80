"""Generated arithmetic word problems with exact answers: the offline dataset.

Problem ``i`` depends only on ``i`` (its own seeded generator), so any slice is
reproducible without generating the problems before it, and a run on
``synthetic`` means the same questions on every machine.  Each problem carries a
reference solution in the style of a worked answer, ending in ``\\boxed{}``, so
the tuner can replay realistic output lengths.
"""

from __future__ import annotations

import random
from collections.abc import Callable

SIZE = 10_000
_SEED = 20_251_126

_NAMES = ("Ava", "Ben", "Chen", "Dina", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jade")
_ITEMS = ("apples", "marbles", "stickers", "books", "pencils", "coins", "shells", "cards")


def _shopping(rng: random.Random, name: str, item: str) -> tuple[str, str, int]:
    start, bags, per_bag = rng.randint(2, 60), rng.randint(2, 9), rng.randint(2, 12)
    bought = bags * per_bag
    given = rng.randint(1, start + bought - 1)
    answer = start + bought - given
    question = (
        f"{name} has {start} {item}. {name} buys {bags} bags with {per_bag} {item} in each bag,"
        f" then gives away {given} {item}. How many {item} does {name} have now?"
    )
    solution = (
        f"{name} buys {bags} * {per_bag} = {bought} {item}.\n"
        f"Together with the {start} {item} from before, that makes {start} + {bought} = "
        f"{start + bought} {item}.\n"
        f"After giving away {given}, {name} has {start + bought} - {given} = {answer} {item}.\n"
        f"The answer is \\boxed{{{answer}}}."
    )
    return question, solution, answer


def _sharing(rng: random.Random, name: str, item: str) -> tuple[str, str, int]:
    friends, each, extra = rng.randint(2, 9), rng.randint(2, 25), rng.randint(1, 30)
    total = friends * each + extra
    question = (
        f"{name} has {total} {item} and gives {each} {item} to each of {friends} friends."
        f" How many {item} are left?"
    )
    given = friends * each
    solution = (
        f"{name} gives away {friends} * {each} = {given} {item}.\n"
        f"So {total} - {given} = {extra} {item} are left.\n"
        f"The answer is \\boxed{{{extra}}}."
    )
    return question, solution, extra


def _savings(rng: random.Random, name: str, item: str) -> tuple[str, str, int]:
    weekly, weeks, price = rng.randint(3, 40), rng.randint(2, 12), rng.randint(1, 9)
    saved = weekly * weeks
    count = saved // price
    question = (
        f"{name} saves ${weekly} every week for {weeks} weeks and then buys as many {item} as"
        f" possible at ${price} each. How many {item} does {name} buy?"
    )
    solution = (
        f"{name} saves {weekly} * {weeks} = ${saved}.\n"
        f"Each costs ${price}, so {name} can buy {saved} / {price} = {saved / price:.2f},"
        f" rounded down {count} {item}.\n"
        f"The answer is \\boxed{{{count}}}."
    )
    return question, solution, count


_TEMPLATES: tuple[Callable[[random.Random, str, str], tuple[str, str, int]], ...] = (
    _shopping,
    _sharing,
    _savings,
)


def synthetic_problem(index: int) -> tuple[str, str, str]:
    """Problem ``index`` as ``(question, answer, solution)``; the same on every call."""
    rng = random.Random(_SEED * 100_003 + index)
    template = _TEMPLATES[rng.randrange(len(_TEMPLATES))]
    question, solution, answer = template(rng, rng.choice(_NAMES), rng.choice(_ITEMS))
    return question, str(answer), solution
