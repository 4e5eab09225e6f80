"""Stopping strategies for static batching in transformers.

``post``: rows stop on EOS or their length limit; stop strings are cut after
generation (what the old system did).  ``per_row``: a row also stops as soon as
its own stop string appears, and the batch ends once every row is done.  Both
give identical texts: :func:`engines.tokens.finish` cuts them the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch
from transformers import StoppingCriteria

from engines.tokens import decode, first_stop

STRATEGIES = ("post", "per_row")


@dataclass(frozen=True, slots=True)
class RowLimit:
    """What ends one row: its stop strings, its token budget, whether EOS counts."""

    stop: tuple[str, ...]
    max_tokens: int
    stops_on_eos: bool


class RowStopper(StoppingCriteria):
    """Per-row stop flags for ``model.generate``; also counts decode steps.

    transformers ANDs the returned flags into its unfinished-rows mask, so a
    finished row stops mattering while the rest of the batch goes on.
    """

    def __init__(
        self,
        tokenizer,  # noqa: ANN001
        rows: Sequence[RowLimit],
        prompt_length: int,
        eos_ids: Collection[int],
        strategy: str,
    ) -> None:
        self.tokenizer = tokenizer
        self.rows = rows
        self.prompt_length = prompt_length
        self.eos_ids = torch.tensor(sorted(eos_ids), dtype=torch.long)
        self.check_stop_strings = strategy == "per_row"
        self.done = torch.zeros(len(rows), dtype=torch.bool)
        # Decoding a tail of the sequence is enough to see a new stop string;
        # the margin covers tokens that decode to partial characters.
        self.tail = 8 + max((len(s) for r in rows for s in r.stop), default=0)
        self.steps = 0

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs
    ) -> torch.BoolTensor:
        self.steps += 1
        generated = input_ids[:, self.prompt_length :]
        length = generated.shape[1]
        last = generated[:, -1].cpu()
        is_eos = torch.isin(last, self.eos_ids)
        for i, row in enumerate(self.rows):
            if self.done[i]:
                continue
            if length >= row.max_tokens or (row.stops_on_eos and is_eos[i]):
                self.done[i] = True
            elif self.check_stop_strings and row.stop:
                tail = decode(self.tokenizer, generated[i, -self.tail :].tolist())
                self.done[i] = first_stop(tail, row.stop) is not None
        return self.done.to(input_ids.device)
