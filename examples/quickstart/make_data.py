"""Generate the quickstart's data: turn a sentence about a person into a compact JSON record.

A real, learnable extraction task that SmolLM2-135M-Instruct gets wrong out of the box (it answers in prose or
with different keys); after a few dozen LoRA steps it answers with exactly the expected JSON.

Eval rows use sentence templates, first names and cities that no training row uses (the EVAL_* pools), so the eval
score measures whether the model learnt to extract, not whether it learnt the training sentences by heart. Jobs and
ages are shared: they are values to copy, and the answer's keys are the same everywhere.

    python examples/quickstart/make_data.py            # writes examples/quickstart/data/{train,eval}.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

TRAIN_NAMES = [
    "Alice",
    "Bruno",
    "Chen",
    "Dana",
    "Emeka",
    "Farah",
    "Goran",
    "Hana",
    "Ivan",
    "Julia",
    "Kenji",
    "Lena",
    "Marco",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wei",
    "Ximena",
    "Yusuf",
    "Zoe",
]
TRAIN_CITIES = [
    "Paris",
    "Lagos",
    "Osaka",
    "Lima",
    "Oslo",
    "Cairo",
    "Quito",
    "Dublin",
    "Hanoi",
    "Porto",
    "Austin",
    "Delhi",
    "Seoul",
    "Accra",
    "Turin",
    "Perth",
]
JOBS = [
    "nurse",
    "pilot",
    "baker",
    "teacher",
    "chemist",
    "lawyer",
    "plumber",
    "designer",
    "farmer",
    "dentist",
    "engineer",
    "librarian",
]
TRAIN_TEMPLATES = [
    "{name} is a {age}-year-old {job} who lives in {city}.",
    "Meet {name}, {age}, a {job} based in {city}.",
    "In {city}, {name} works as a {job}; {name} is {age} years old.",
    "{name} ({age}) moved to {city} last year to work as a {job}.",
    "Our new {job}, {name}, is {age} and comes from {city}.",
    "At {age}, {name} is the best-known {job} in {city}.",
]
# Held out: only eval rows use these.
EVAL_NAMES = ["Amara", "Bjorn", "Ines", "Mateo", "Sakura", "Tomasz", "Leilani", "Oskar"]
EVAL_CITIES = ["Nairobi", "Kyoto", "Bogota", "Tallinn", "Hobart", "Rabat"]
EVAL_TEMPLATES = [
    "{name}, a {job} from {city}, just turned {age}.",
    "Everyone in {city} knows {name}: {age} years old and a {job} by trade.",
    "{name}, {age}, has worked as a {job} in {city} for years.",
]
POOLS = {
    "train": (TRAIN_NAMES, TRAIN_CITIES, TRAIN_TEMPLATES),
    "eval": (EVAL_NAMES, EVAL_CITIES, EVAL_TEMPLATES),
}
INSTRUCTION = "Extract name, age, job and city as JSON."


def make_row(rng: random.Random, split: str = "train") -> dict:
    """One chat row for `split` ("train" or "eval"), drawn from that split's names, cities and templates."""
    names, cities, templates = POOLS[split]
    person = {
        "name": rng.choice(names),
        "age": rng.randint(19, 79),
        "job": rng.choice(JOBS),
        "city": rng.choice(cities),
    }
    sentence = rng.choice(templates).format(**person)
    answer = json.dumps(person, separators=(", ", ": "))
    return {
        "messages": [
            {"role": "user", "content": f"{INSTRUCTION}\n{sentence}"},
            {"role": "assistant", "content": answer},
        ]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--train", type=int, default=480)
    parser.add_argument("--eval", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", args.train), ("eval", args.eval)):
        rows = [make_row(rng, split) for _ in range(count)]
        (args.out / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        print(f"wrote {count} rows to {args.out / f'{split}.jsonl'}")


if __name__ == "__main__":
    main()
