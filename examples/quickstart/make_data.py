"""Generate the quickstart's data: turn a sentence about a person into a compact JSON record.

A real, learnable extraction task that SmolLM2-135M-Instruct gets wrong out of the box (it answers in prose or
with different keys); after a few dozen LoRA steps it answers with exactly the expected JSON.

    python examples/quickstart/make_data.py            # writes examples/quickstart/data/{train,eval}.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

FIRST_NAMES = [
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
CITIES = [
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
TEMPLATES = [
    "{name} is a {age}-year-old {job} who lives in {city}.",
    "Meet {name}, {age}, a {job} based in {city}.",
    "In {city}, {name} works as a {job}; {name} is {age} years old.",
    "{name} ({age}) moved to {city} last year to work as a {job}.",
    "Our new {job}, {name}, is {age} and comes from {city}.",
    "At {age}, {name} is the best-known {job} in {city}.",
]
INSTRUCTION = "Extract name, age, job and city as JSON."


def make_row(rng: random.Random) -> dict:
    person = {
        "name": rng.choice(FIRST_NAMES),
        "age": rng.randint(19, 79),
        "job": rng.choice(JOBS),
        "city": rng.choice(CITIES),
    }
    sentence = rng.choice(TEMPLATES).format(**person)
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
        rows = [make_row(rng) for _ in range(count)]
        (args.out / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        print(f"wrote {count} rows to {args.out / f'{split}.jsonl'}")


if __name__ == "__main__":
    main()
