"""The built-in task: synthetic contract-clause extraction.

A clause in varied wording goes in; a JSON object with the parties, the effective date, the term in
months, the governing law and the renewal flag comes out. Generation is deterministic for a seed, so
the same command always writes the same files, and the task is easy to score: the answer either
parses to exactly the right object or it does not.

Example::

    >>> ex = generate(1, seed=0)[0]
    >>> sorted(json.loads(ex["messages"][-1]["content"]))
    ['auto_renewal', 'effective_date', 'governing_law', 'parties', 'term_months']
"""

from __future__ import annotations

import json
import random
from datetime import date

SYSTEM_PROMPT = "Extract the contract fields as JSON."
FIELDS = ("parties", "effective_date", "term_months", "governing_law", "auto_renewal")

_NAME_HEADS = [
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Northwind", "Contoso", "Fabrikam",
    "Tailspin", "Litware", "Adatum", "Proseware", "Wingtip", "Lucerne", "Blue Yonder", "Coho",
    "Alpine", "Margie", "Fourth Coffee", "Trey", "Woodgrove", "Humongous", "Vandelay", "Hooli",
    "Pied Piper", "Soylent", "Cyberdyne", "Tyrell", "Wonka", "Oscorp", "Gringotts", "Monarch",
    "Dunder Mifflin", "Sterling", "Aperture", "Black Mesa", "Massive Dynamic", "Bluth", "Prestige",
]
_NAME_MIDS = ["", "", "", " Logistics", " Software", " Health", " Energy", " Media", " Foods",
              " Analytics", " Capital", " Systems", " Partners", " Robotics", " Labs"]
_NAME_TAILS = [" Inc.", " LLC", " Ltd.", " GmbH", " Corp.", " S.A.", " plc", " Co."]
_LAWS = [
    "New York", "Delaware", "California", "Texas", "Illinois", "Massachusetts", "Washington",
    "England and Wales", "Scotland", "Ireland", "Ontario", "Germany", "France", "the Netherlands",
    "Singapore", "New South Wales", "Switzerland", "Sweden",
]
_STATES = {"New York", "Delaware", "California", "Texas", "Illinois", "Massachusetts", "Washington"}
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_ORDINAL = {1: "1st", 2: "2nd", 3: "3rd", 21: "21st", 22: "22nd", 23: "23rd", 31: "31st"}
_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven",
                 8: "eight", 9: "nine", 10: "ten", 12: "twelve", 18: "eighteen", 24: "twenty-four",
                 36: "thirty-six", 48: "forty-eight", 60: "sixty"}
_TERMS = [6, 9, 12, 18, 24, 36, 48, 60]
_AGREEMENTS = ["Services Agreement", "Master Services Agreement", "Supply Agreement",
               "License Agreement", "Consulting Agreement", "Distribution Agreement",
               "Software Subscription Agreement", "Agreement"]


def _company(rng: random.Random) -> str:
    return rng.choice(_NAME_HEADS) + rng.choice(_NAME_MIDS) + rng.choice(_NAME_TAILS)


def _date_text(rng: random.Random, d: date) -> str:
    day = _ORDINAL.get(d.day, f"{d.day}th")
    month = _MONTHS[d.month - 1]
    return rng.choice([
        f"{month} {d.day}, {d.year}",
        f"{d.day} {month} {d.year}",
        f"the {day} day of {month}, {d.year}",
        d.isoformat(),
        f"{month} {day}, {d.year}",
    ])


def _term_text(rng: random.Random, months: int) -> str:
    options = [f"{months} months", f"{_NUMBER_WORDS[months]} ({months}) months"]
    if months % 12 == 0:
        years = months // 12
        unit = "year" if years == 1 else "years"
        options += [f"{_NUMBER_WORDS[years]} ({years}) {unit}", f"{years} {unit}"]
    return rng.choice(options)


def _law_text(rng: random.Random, law: str) -> str:
    where = f"the State of {law}" if law in _STATES and rng.random() < 0.6 else law
    return rng.choice([
        f"This Agreement shall be governed by the laws of {where}.",
        f"This Agreement is governed by and construed in accordance with the laws of {where}.",
        f"The laws of {where} govern this Agreement, without regard to conflict of laws rules.",
        f"Any dispute hereunder is subject to the laws of {where}.",
    ])


def _renewal_text(rng: random.Random, renews: bool) -> str:
    if renews:
        return rng.choice([
            "Thereafter it renews automatically for successive one-year periods unless either "
            "party gives written notice of non-renewal.",
            "The term shall automatically renew for additional periods of equal length unless "
            "terminated.",
            "Upon expiry the Agreement is renewed automatically on the same terms.",
        ])
    return rng.choice([
        "This Agreement shall not renew automatically.",
        "Upon expiry the Agreement terminates and may be renewed only by a written amendment "
        "signed by both parties.",
        "There is no automatic renewal.",
    ])


def make_example(rng: random.Random) -> tuple[str, dict]:
    """One clause and the object it should be parsed into."""
    first = _company(rng)
    second = _company(rng)
    while second == first:
        second = _company(rng)
    start = date(rng.randint(2015, 2029), rng.randint(1, 12), rng.randint(1, 28))
    months = rng.choice(_TERMS)
    law = rng.choice(_LAWS)
    renews = rng.random() < 0.5
    kind = rng.choice(_AGREEMENTS)
    roles = rng.choice([("Provider", "Client"), ("Licensor", "Licensee"), ("Supplier", "Buyer"),
                        ("Company", "Customer")])
    opening = rng.choice([
        f'This {kind} is entered into as of {_date_text(rng, start)} by and between {first} '
        f'("{roles[0]}") and {second} ("{roles[1]}").',
        f"{first} and {second} enter into this {kind}, effective {_date_text(rng, start)}.",
        f'This {kind} (the "Agreement"), dated {_date_text(rng, start)}, is made between '
        f"{first} and {second}.",
    ])
    term = rng.choice([
        f"The initial term of this Agreement is {_term_text(rng, months)}.",
        f"This Agreement remains in force for a period of {_term_text(rng, months)} from the "
        "effective date.",
        f"The Agreement shall continue for {_term_text(rng, months)}.",
    ])
    tail = [_renewal_text(rng, renews), _law_text(rng, law)]
    rng.shuffle(tail)
    clause = " ".join([opening, term, *tail])
    answer = {
        "parties": [first, second],
        "effective_date": start.isoformat(),
        "term_months": months,
        "governing_law": law,
        "auto_renewal": renews,
    }
    return clause, answer


def to_record(clause: str, answer: dict) -> dict:
    """The chat-format JSONL record of one example (what `tunelm data contracts` writes)."""
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": clause},
            {"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)},
        ]
    }


def generate(n: int, seed: int = 0) -> list[dict]:
    """`n` chat records, the same for the same seed."""
    rng = random.Random(f"tunelm-contracts-{seed}")
    return [to_record(*make_example(rng)) for _ in range(n)]


def write_dataset(out_dir, train: int, eval: int, seed: int = 0) -> dict[str, str]:
    """Write `train.jsonl` and `eval.jsonl` under `out_dir`; returns their paths.

    The eval split uses its own seed stream, so its examples do not depend on the train size.
    """
    from pathlib import Path

    from ..files import write_jsonl_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n, split_seed in (("train", train, seed), ("eval", eval, seed + 100_003)):
        paths[split] = str(write_jsonl_atomic(out / f"{split}.jsonl", generate(n, split_seed)))
    return paths
