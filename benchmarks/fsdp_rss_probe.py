"""Resident memory of one rank, plain PyTorch (no Trainer, no tunelm): a 52M-parameter random
Llama (hidden 768, 8 layers) under DDP or FSDP2 (`fully_shard` per decoder layer and the root)
on 2 gloo ranks, two AdamW steps at 256 tokens. Prints each rank's peak and current RSS (MB)
after building the model, after wrapping it, and after the steps.

    OMP_NUM_THREADS=1 .venv/bin/python -m torch.distributed.run --standalone \\
        --nproc-per-node=2 benchmarks/fsdp_rss_probe.py {ddp|fsdp}
    (again with MALLOC_MMAP_THRESHOLD_=65536 in the environment)
"""

from __future__ import annotations

import resource
import sys

import torch
import torch.distributed as dist
from transformers import LlamaConfig, LlamaForCausalLM


def rss() -> tuple[float, float]:
    """(peak, current) resident memory of this process in MB."""
    with open("/proc/self/statm") as fh:
        current = int(fh.read().split()[1]) * 4096 / 2**20
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), round(current)


def main(mode: str) -> None:
    dist.init_process_group("gloo")
    cfg = LlamaConfig(vocab_size=260, hidden_size=768, intermediate_size=2048,
                      num_hidden_layers=8, num_attention_heads=12, num_key_value_heads=6,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    built = rss()
    if mode == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (dist.get_world_size(),))
        for layer in model.model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
    else:
        model = torch.nn.parallel.DistributedDataParallel(model)
    wrapped = rss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, cfg.vocab_size, (1, 256))
    for _ in range(2):
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()
    print(f"{mode} rank {dist.get_rank()} | built {built} | wrapped {wrapped} | "
          f"after 2 steps {rss()}  (peak MB, current MB)", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
