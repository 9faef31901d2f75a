"""`tunelm recommend`: a sound starting configuration at zero compute, every value explained.

    >>> from tunelm.recommend import Request, recommend
    >>> rec = recommend(Request(model="meta-llama/Llama-3.1-8B", examples=5000, avg_tokens=400,
    ...                         gpus=1, gpu_memory=80))
    >>> rec.advice["train.learning_rate"].value
    0.000286

The facts (model, dataset, hardware) are gathered in `facts` and `gather`, the only modules that
read files or devices; `rules` decides each value from them, with constants from `sources`;
`advise` puts the answer together; `render` writes it; `measure` (--measure) is the one module
that runs the trainer.
"""

from .advice import Advice, Recommendation, Request
from .advise import recommend
from .facts import ModelFacts, model_facts
from .gather import DatasetFacts
from .measure import measure_throughput
from .memory import MemoryEstimate, estimate
from .render import RENDERERS, to_json, to_text, to_yaml
from .rules import formula_lr

__all__ = [
    "Advice", "DatasetFacts", "MemoryEstimate", "ModelFacts", "RENDERERS", "Recommendation",
    "Request", "estimate", "formula_lr", "measure_throughput", "model_facts", "recommend",
    "to_json", "to_text", "to_yaml",
]
