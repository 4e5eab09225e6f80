"""The eval fixtures of tests/evaluation, for the command tests here."""

from tests.evaluation.conftest import run_eval

__all__ = ["run_eval"]
