"""Batches for the Trainer: padding, and packed sequences whose examples attend only to
themselves.

A packed sequence carries `seq_lens`, the lengths of the examples in it. Its batch gets
`position_ids` that restart at 0 at every example (and at the padding) and no `attention_mask`:
Transformers then derives block-diagonal causal attention from the position ids
(`masking_utils.find_packed_sequence_indices` for sdpa and eager, varlen kernels for flash
attention), the padding-free path `DataCollatorWithFlattening` uses.
"""

from __future__ import annotations

from .encode import IGNORE, Encoded


def _fields(b) -> tuple[list[int], list[int], list[int] | None]:
    if isinstance(b, Encoded):
        return b.input_ids, b.labels, None
    return b["input_ids"], b["labels"], b.get("seq_lens")


class Collator:
    """Pads a batch to its longest sequence (to a multiple of 8 for tensor-core friendly shapes);
    a batch of packed sequences gets per-example position ids instead of an attention mask."""

    def __init__(self, pad_id: int, multiple: int = 8):
        self.pad_id = pad_id
        self.multiple = multiple

    def __call__(self, batch):
        import torch

        items = [_fields(b) for b in batch]
        n = max(len(ids) for ids, _, _ in items)
        n = -(-n // self.multiple) * self.multiple
        ids = torch.full((len(items), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(items), n), dtype=torch.long)
        for i, (input_ids, item_labels, _) in enumerate(items):
            k = len(input_ids)
            ids[i, :k] = torch.tensor(input_ids)
            labels[i, :k] = torch.tensor(item_labels)
            mask[i, :k] = 1
        if all(seq_lens is None for _, _, seq_lens in items):
            return {"input_ids": ids, "attention_mask": mask, "labels": labels}
        return {"input_ids": ids, "labels": labels, "position_ids": position_ids(items, n)}


def position_ids(items, n: int):
    """Positions restarting at 0 at every example of every row, and at its padding."""
    import torch

    pos = torch.empty((len(items), n), dtype=torch.long)
    for i, (input_ids, _, seq_lens) in enumerate(items):
        lens = list(seq_lens) if seq_lens is not None else [len(input_ids)]
        if n > len(input_ids):
            lens.append(n - len(input_ids))
        pos[i] = torch.cat([torch.arange(k) for k in lens])
    return pos


class ListDataset:
    """A map-style dataset over encoded examples (what Trainer needs: __len__ and __getitem__):
    a list of Encoded, or a datasets.Dataset of input_ids and labels (read row by row from its
    memory-mapped Arrow files)."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        e = self.items[i]
        if isinstance(e, Encoded):
            return {"input_ids": e.input_ids, "labels": e.labels}
        return e
