"""Redraw the bundled samples from the full datasets (not shipped): python data/make_samples.py DIR.

DIR holds reuters21578/{train,test}.jsonl, ag_news_test/ag_news_test.jsonl and
cooking_stackexchange/cooking.stackexchange.txt in the shape described in data/README.md.
"""

import json
import random
import sys
from pathlib import Path


def _load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def main(src: Path, out: Path) -> None:
    rng = random.Random(20261121)
    train = _load(src / "reuters21578/train.jsonl")
    test = _load(src / "reuters21578/test.jsonl")
    for row in train:
        row["modapte"] = "train"
    for row in test:
        row["modapte"] = "test"
    sample = sorted(rng.sample(train + test, 2000), key=lambda r: int(r["id"]))
    with open(out / "reuters_sample.jsonl", "w", encoding="utf-8") as f:
        for r in sample:
            row = {"id": r["id"], "text": r["text"], "labels": r["labels"], "modapte": r["modapte"]}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    by_label: dict[str, list] = {}
    for r in _load(src / "ag_news_test/ag_news_test.jsonl"):
        by_label.setdefault(r["labels"][0], []).append(r)
    ag = []
    for label in sorted(by_label):
        ag += rng.sample(by_label[label], 500)
    with open(out / "agnews_sample.jsonl", "w", encoding="utf-8") as f:
        for r in sorted(ag, key=lambda r: int(r["id"])):
            f.write(json.dumps({"id": r["id"], "text": r["text"], "label": r["labels"][0]}, ensure_ascii=False) + "\n")

    lines = (src / "cooking_stackexchange/cooking.stackexchange.txt").read_text(encoding="utf-8").splitlines()
    with open(out / "cooking_sample.txt", "w", encoding="utf-8") as f:
        for i in sorted(rng.sample(range(len(lines)), 1500)):
            f.write(lines[i] + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).parent)
