"""Extract a final answer from a response and compare it with the gold answer.

Plain numbers (``1,000``, ``$18``, ``25%``, ``-3``, ``0.5``, ``\\frac{1}{2}``) are
compared as exact rationals, so ``1`` never equals ``18`` by accident of
parsing.  Anything else (LaTeX expressions, intervals, tuples) goes to
``math-verify``.  Grading is safe in any thread: math-verify's timeouts use
``signal.alarm``, which only works on the main thread, so they are enabled
there and disabled elsewhere.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from fractions import Fraction

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_ANSWER_IS = re.compile(r"the (?:final )?answer is[:\s]*", re.IGNORECASE)
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}$|^(-?\d+)/(\d+)$")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{[^{}]*\}")
_DECORATION = re.compile(r"\\[,!;: ]|\\?\$|\\?%|\\left|\\right|\^\\circ|\^\{\\circ\}|\\circ")
_LABELLED = re.compile(
    r"^(?:[A-Za-z]\s*=\s*)?\\?\$?(?P<number>-?[\d,]*\.?\d+)(?:\s+[A-Za-z][A-Za-z .]*)?$"
)
_TIMEOUT_S = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class Grade:
    """The verdict on one response."""

    predicted: str | None
    gold: str
    correct: bool


def _boxed_contents(text: str) -> str | None:
    """Contents of the last balanced ``\\boxed{...}`` or ``\\fbox{...}``."""
    best_start, best = -1, None
    for command in _BOX_COMMANDS:
        position = text.rfind(command + "{")
        while position != -1:
            content = _balanced(text, position + len(command))
            if content is not None:
                if position > best_start:
                    best_start, best = position, content
                break
            position = text.rfind(command + "{", 0, position)
    return best


def _balanced(text: str, open_brace: int) -> str | None:
    depth = 0
    for index in range(open_brace, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[open_brace + 1 : index]
    return None  # unclosed: a response cut at max_new_tokens


def extract_answer(text: str) -> str | None:
    """The final answer in ``text``, or ``None`` when it states none.

    Looks for, in order: the last balanced ``\\boxed{}`` (or ``\\fbox{}``), the
    text after a GSM8K-style ``####``, the text after the last "the answer is",
    and finally the last number.
    """
    boxed = _boxed_contents(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    if "####" in text:
        tail = text.rsplit("####", 1)[1].strip().splitlines()
        if tail and tail[0].strip():
            return tail[0].strip()
    said = list(_ANSWER_IS.finditer(text))
    if said:
        tail = text[said[-1].end() :].strip().splitlines()
        answer = tail[0].strip().rstrip(".").strip() if tail else ""
        if answer:
            return answer
    numbers = _NUMBER.findall(text)
    return numbers[-1].rstrip(".,") if numbers else None


def parse_number(text: str) -> Fraction | None:
    """``text`` as an exact rational when it is a plain number, else ``None``."""
    cleaned = _DECORATION.sub("", _TEXT.sub("", text)).strip().rstrip(".")
    cleaned = re.sub(r"\s+", "", cleaned)
    if _THOUSANDS.match(cleaned):
        cleaned = cleaned.replace(",", "")
    fraction = _FRAC.match(cleaned)
    if fraction:
        sign, numerator, denominator = (
            (fraction[1], fraction[2], fraction[3])
            if fraction[2]
            else ("", fraction[4], fraction[5])
        )
        if int(denominator) == 0:
            return None
        value = Fraction(int(numerator), int(denominator))
        return -value if sign else value
    if re.fullmatch(r"-?(?:\d+(?:\.\d*)?|\.\d+)", cleaned):
        return Fraction(cleaned)
    return None


def _numbers_equal(a: Fraction, b: Fraction) -> bool:
    if a == b:
        return True
    # Floats stored as gold (GSM-Hard: 3244047.0999999996) are only near their
    # intended decimal; integers stay exact, so 1 000 000 != 1 000 001.
    if a.denominator == 1 and b.denominator == 1:
        return False
    return abs(a - b) <= Fraction(1, 10**6) * max(abs(a), abs(b))


def _math_verify(predicted: str, gold: str) -> bool:
    from math_verify import parse, verify

    # signal-based timeouts only work on the main thread (see module docstring)
    timeout = _TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    try:
        gold_parsed = parse(f"${gold}$", parsing_timeout=timeout)
        predicted_parsed = parse(f"${predicted}$", parsing_timeout=timeout)
        if not gold_parsed or not predicted_parsed:
            return False
        return bool(verify(gold_parsed, predicted_parsed, timeout_seconds=timeout))
    except Exception:  # a parser crash or timeout on odd input means "not shown equal"
        return False


def _normalise_text(text: str) -> str:
    return re.sub(r"\s+", "", _DECORATION.sub("", text)).replace("\\dfrac", "\\frac")


def answers_match(predicted: str | None, gold: str) -> bool:
    """Whether ``predicted`` states the same value as ``gold``.

    Plain numbers compare as exact rationals; everything else by string
    identity after light normalisation, then by ``math-verify``.
    """
    if predicted is None or not predicted.strip():
        return False
    gold_number, predicted_number = parse_number(gold), parse_number(predicted)
    if gold_number is not None and predicted_number is not None:
        return _numbers_equal(predicted_number, gold_number)
    if gold_number is not None:  # "x = 18", "18 apples": a number with a name or a unit
        labelled = _LABELLED.match(_TEXT.sub("", predicted).strip())
        number = parse_number(labelled["number"]) if labelled else None
        if number is not None and _numbers_equal(number, gold_number):
            return True
    if _normalise_text(predicted) == _normalise_text(gold):
        return True
    return _math_verify(predicted, gold)


def grade(response: str, gold: str) -> Grade:
    """Extract the answer from ``response`` and compare it with ``gold``."""
    predicted = extract_answer(response)
    return Grade(predicted=predicted, gold=gold, correct=answers_match(predicted, gold))
