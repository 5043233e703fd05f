"""A small fixed vocabulary for the built-in language-conditioned tasks.

Instructions are made of a phrasing template and a colour word. The vocabulary is built from the
training templates and the colours only, so the held-out (evaluation) phrasings contain words the
policy never saw; those map to the unknown id, as an out-of-vocabulary word does for a real
tokenizer. Every instruction's ids are precomputed into one LongTensor
([num_templates, num_colours, length]), so a task picks instructions by indexing a tensor and no
Python string is touched while it runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

PAD_ID, UNK_ID = 0, 1
COLOURS = ("red", "green", "blue", "yellow")

# phrasings seen in training
TRAIN_TEMPLATES = (
    "reach the {colour} target",
    "touch the {colour} one",
    "go to the {colour} marker",
    "move your hand to the {colour} dot",
    "point at the {colour} spot",
    "find the {colour} circle",
    "reach for the {colour} one",
    "go and touch the {colour} target",
)
# phrasings used only in evaluation: each has words outside the training vocabulary (-> UNK_ID)
EVAL_TEMPLATES = (
    "put the gripper on the {colour} goal",
    "{colour} one please",
    "head over to the {colour} disc",
    "could you tap the {colour} blob",
)

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-case words, split on spaces and punctuation."""
    return _WORD.findall(text.lower())


def build_vocabulary(templates: Sequence[str] = TRAIN_TEMPLATES, colours: Sequence[str] = COLOURS) -> dict[str, int]:
    """word -> id, sorted for determinism; ids 0 and 1 are padding and the unknown word."""
    found = {w for t in templates for w in words(t.replace("{colour}", " "))} | {w for c in colours for w in words(c)}
    return {w: i for i, w in enumerate(sorted(found), start=2)}


VOCAB = build_vocabulary()
VOCAB_SIZE = len(VOCAB) + 2  # with padding and unknown


def vocabulary_words(vocab: dict[str, int] = VOCAB) -> list[str]:
    """The word of every id, in id order ("" for padding and the unknown word): what a pretrained
    text model embeds for each id."""
    table = [""] * (max(vocab.values()) + 1)
    for word, index in vocab.items():
        table[index] = word
    return table


def tokenize(text: str, length: int, vocab: dict[str, int] = VOCAB) -> list[int]:
    """The ids of `text`'s words (UNK_ID for a word outside `vocab`), padded with PAD_ID or truncated to `length`."""
    ids = [vocab.get(w, UNK_ID) for w in words(text)][:length]
    return ids + [PAD_ID] * (length - len(ids))


def colour_ids(colours: Sequence[str] = COLOURS, vocab: dict[str, int] = VOCAB) -> list[int]:
    """The id of each colour word."""
    return [vocab[c] for c in colours]


def instruction_table(
    templates: Sequence[str], length: int, colours: Sequence[str] = COLOURS, vocab: dict[str, int] = VOCAB,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Every instruction's ids: a LongTensor [num_templates, num_colours, length].

    Raises if an instruction would be truncated (its colour word could be cut off).
    """
    rows = []
    for template in templates:
        row = []
        for colour in colours:
            text = template.format(colour=colour)
            if len(words(text)) > length:
                raise ValueError(f"'{text}' has more than {length} words: raise the instruction length")
            row.append(tokenize(text, length, vocab))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.long, device=device)


__all__ = ["COLOURS", "EVAL_TEMPLATES", "PAD_ID", "TRAIN_TEMPLATES", "UNK_ID", "VOCAB", "VOCAB_SIZE",
           "build_vocabulary", "colour_ids", "vocabulary_words", "instruction_table", "tokenize", "words"]
