"""Published constants and where they come from: the one table every rule reads.

When a source is revised, change it here; the tests pin the figures the sources publish.
"""

from __future__ import annotations

SOURCES = {
    "tinker": "Tinker cookbook, hyperparam_utils.get_lr (Thinking Machines, 2025): "
              "LR = lr_base x M_LoRA x (2000/hidden)^P, fitted on exhaustive sweeps with alpha 32, "
              "<0.5% regret",
    "lora_without_regret": "Schulman et al., 'LoRA Without Regret', Thinking Machines (2025): "
                           "the best LoRA rate is ~10x full fine-tuning and rank-independent at "
                           "fixed alpha",
    "practitioner": "practitioner ranges: Hugging Face PEFT/TRL guides, Axolotl and Unsloth "
                    "example configs, Raschka 'Practical Tips for Finetuning LLMs Using LoRA' (2023)",
    "qlora": "Dettmers et al., 'QLoRA' (2023, arXiv:2305.14314): NF4, paged AdamW, "
             "max_grad_norm 0.3",
    "lora": "Hu et al., 'LoRA' (2021, arXiv:2106.09685)",
    "rslora": "Kalajdzievski, 'A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA' "
              "(2023, arXiv:2312.03732): scaling alpha/sqrt(r)",
    "sqrt_rule": "Malladi et al., 'On the SDEs and Scaling Rules for Adaptive Gradient "
                 "Algorithms' (2022, arXiv:2205.10287): for Adam, scale the rate with the square "
                 "root of the batch",
    "wsd": "Hägele et al., 'Scaling Laws and Compute-Optimal Training Beyond Fixed Training "
           "Durations' (2024, arXiv:2405.18392): warmup-stable-decay",
    "common": "common practice in fine-tuning recipes (TRL, Axolotl, torchtune defaults)",
    "tunelm": "tunelm's own measurements on SmolLM2-135M (docs/benchmarks.md)",
    "fsdp": "Rajbhandari et al., 'ZeRO' (2020, arXiv:1910.02054) and Zhao et al., 'PyTorch "
            "FSDP' (2023, arXiv:2304.11277): fully sharded, each of N ranks keeps 1/N of the "
            "weights, gradients and optimizer state, and all-gathers one layer's weights around "
            "its forward and backward; activations are not sharded",
    "transformers_hp": "Transformers' Trainer.hyperparameter_search default space "
                       "(learning rate 1e-6 to 1e-4)",
}

# The hidden-size rule (Tinker cookbook).
LR_BASE = 5e-5
M_LORA = 10.0  # LoRA multiplier; 1 for full fine-tuning
HIDDEN_REF = 2000
EXPONENTS = {"llama": 0.781, "qwen": 0.0775}
ALPHA_REF = 32.0  # the rule's constants were fitted with alpha fixed at 32

# Practitioner learning-rate ranges by model size (billions of parameters): (upper bound, lo, hi).
PRACTITIONER_LORA = [
    (3.5, 2e-4, 1e-3, "small models (<3B) take rates up to ~1e-3"),
    (10.0, 1e-4, 3e-4, "LoRA on 7B: 1e-4 to 3e-4"),
    (30.0, 5e-5, 2e-4, "LoRA on 13B: 5e-5 to 2e-4"),
    (float("inf"), 1e-5, 5e-5, "LoRA on 70B: 1e-5 to 5e-5"),
]
PRACTITIONER_FULL = (1e-6, 5e-6, "full fine-tuning: 1e-6 to 5e-6")
QLORA_7B_MAX = 1e-4  # QLoRA on ~7B: stay below 1e-4

# Epochs by dataset size: (max examples, recommended, range low, range high)
EPOCHS = [(1_000, 3, 3, 5), (5_000, 2, 2, 3), (50_000, 1, 1, 2), (float("inf"), 1, 1, 1)]
MIN_STEPS = 100  # at least this many optimizer steps, ideally far more
EVALS_PER_RUN = 12
EARLY_STOPPING = {"patience": 3, "threshold": 0.001}
CLIP = {"default": 1.0, "qlora": 0.3}
DROPOUT = 0.05
WEIGHT_DECAY = {"default": 0.01, "overfit_prone": 0.1}

# LoRA rank by task and dataset size (practitioner ranges: 4-16 for small specialised sets and
# format or style tasks, 32-64 for large or multi-domain sets, code and math)
RANK = {"format": 8, "small": 16, "large": 32, "code": 32, "code_large": 64}
LARGE_DATASET = 5_000  # examples: from here a set counts as large (rank, code rank)

# Effective batch (practitioner bands): 16-64 for small specialised sets, 32-128 for instruction
# tuning; halved (not below MIN_REF_BATCH) until the run has MIN_STEPS optimizer steps
REF_BATCH = {"small": 16, "default": 32, "huge": 64}
SMALL_DATASET = 2_000  # examples: below this a set is small and specialised
HUGE_DATASET = 50_000  # examples: from here the larger reference batch
MIN_REF_BATCH = 4
MICRO_BATCH_WANTED = 4  # below this micro-batch, try gradient checkpointing for a larger one
MAX_LENGTH_STEP = 64  # data.max_length: the 95th-percentile length rounded up to a multiple

# Warmup share by dataset size: (below this many examples, ratio): 3-10% of the steps
WARMUP = [(1_000, 0.1), (10_000, 0.05), (float("inf"), 0.03)]
OVERFIT_PRONE = {"examples": 1_000, "rank": 64}  # fewer examples, or at least this rank

# Throughput when not measured: FLOPs per token (x parameters) and device speed
FLOPS_PER_TOKEN = {"full": 6, "adapter": 4}  # forward + backward; frozen weights skip 2
GPU_FLOPS = 312e12  # an A100-class GPU, bf16 dense
GPU_UTILISATION = 0.4
CPU_FLOPS = 0.078e12  # measured: SmolLM2-135M LoRA at ~145 tokens/s on 2 CPU cores

# Dataset and hardware facts when they are not given or cannot be read
DEFAULT_AVG_TOKENS = 512.0  # --examples without --avg-tokens
P95_OVER_MEAN = 1.5  # 95th-percentile length of a described (not read) dataset
CHARS_PER_TOKEN = 4  # length estimate without a tokenizer, plus TEMPLATE_TOKENS
TEMPLATE_TOKENS = 8
DEMO_TASK_SIZE = 240  # the built-in task's size when recommend is given no data: the demo's
DEFAULT_GPU_GIB = 80.0  # a GPU whose memory cannot be read
DEFAULT_RAM_GIB = 16.0  # a machine whose memory cannot be read
QLORA_7B_SIZES = (3.5, 10.0)  # billions of parameters: the "7B" band of QLORA_7B_MAX
DISAGREE_FACTOR = 1.5  # rule and practitioners disagree when the rate is this far outside
OPTIMIZER_BYTES = {"adamw": 8, "8bit": 2}  # optimizer state per trainable parameter
# FSDP (train.sharding fsdp): the full weights of this many decoder layers are gathered at once on
# a rank (the one computing and the one prefetched: FSDP2's default forward/backward prefetch)
FSDP_GATHERED_LAYERS = 2
