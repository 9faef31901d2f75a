"""The built-in natural-text task: docstrings of Python's standard library, as plain text.

Unlike the contract task, whose loss can approach zero, natural text keeps the eval loss well above
zero, so relative regret in eval loss means something. It ships with Python itself: no download.
The split is by a hash of each docstring's qualified name, so it is stable across runs.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import random
from pathlib import Path

from ..files import write_jsonl_atomic

MODULES = (
    "argparse", "ast", "asyncio", "base64", "bisect", "calendar", "codecs", "collections",
    "concurrent.futures", "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime",
    "decimal", "difflib", "email.message", "enum", "fnmatch", "fractions", "ftplib", "functools",
    "getopt", "gettext", "glob", "gzip", "heapq", "hmac", "html.parser", "http.client",
    "http.cookiejar", "imaplib", "inspect", "ipaddress", "json", "locale", "logging",
    "logging.handlers", "mailbox", "mimetypes", "multiprocessing.pool", "numbers", "operator",
    "optparse", "pathlib", "pickle", "pkgutil", "platform", "poplib", "pprint", "queue", "random",
    "re", "sched", "secrets", "selectors", "shlex", "shutil", "smtplib", "socket", "socketserver",
    "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading",
    "timeit", "tokenize", "traceback", "turtle", "typing", "unittest.case", "urllib.parse",
    "urllib.request", "uuid", "warnings", "wave", "weakref", "xml.dom.minidom",
    "xml.etree.ElementTree", "zipfile",
)


def collect(min_chars: int = 200, max_chars: int = 1500) -> list[tuple[str, str]]:
    """(qualified name, docstring) pairs of the listed modules, sorted, de-duplicated."""
    seen: set[str] = set()
    out: list[tuple[str, str]] = []

    def add(name: str, obj) -> None:
        doc = inspect.getdoc(obj)
        if doc and min_chars <= len(doc) <= max_chars and doc not in seen:
            seen.add(doc)
            out.append((name, doc))

    for mod_name in MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except Exception:  # a module missing from this Python build
            continue
        add(mod_name, mod)
        for attr, obj in sorted(vars(mod).items()):
            if attr.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isclass(obj):
                add(f"{mod_name}.{attr}", obj)
                for meth, fn in sorted(vars(obj).items()):
                    if not meth.startswith("_") and inspect.isfunction(fn):
                        add(f"{mod_name}.{attr}.{meth}", fn)
            elif inspect.isfunction(obj):
                add(f"{mod_name}.{attr}", obj)
    return sorted(out)


def _is_eval(name: str) -> bool:
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % 10 == 0


def write_dataset(out_dir, train: int, eval: int, seed: int = 0) -> dict[str, str]:
    """Write `train.jsonl` and `eval.jsonl` ({"text": ...}) with at most `train`/`eval` examples."""
    items = collect()
    train_items = [d for n, d in items if not _is_eval(n)]
    eval_items = [d for n, d in items if _is_eval(n)]
    rng = random.Random(seed)
    rng.shuffle(train_items)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, docs in (("train", train_items[:train]), ("eval", eval_items[:eval])):
        paths[split] = str(write_jsonl_atomic(out / f"{split}.jsonl", ({"text": d} for d in docs)))
    return paths
