#!/usr/bin/env python3
"""Builds the built-in evaluation sets of `flowhn eval` from the validation books of data/sample.

Only the two validation books are read (the train/validation split of data/README.md never trains on them):
  data/eval/cloze.jsonl          last-word cloze, lines {"text": ...}; the target is the last word
  data/eval/next-sentence.jsonl  next-sentence choice, lines {"context": ..., "choices": [...], "gold": i}

Deterministic: the same books and seed give the same files. Usage: tools/make-eval-sets.py [--seed 1234]
"""
import argparse
import json
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOKS = ["austen-persuasion.txt", "chesterton-thursday.txt"]
PER_BOOK = 150
STOPWORDS = set("""a an and are as at be but by for from had has have he her him his i in is it its me my no not of on or
our she so that the their them then there they this to was we were what when which who will with would you your
said one all very been could did do does into more much must only other over such than these those upon us""".split())


def paragraphs(text):
    """Paragraphs (blank-line separated) with their hard line wraps joined into single spaces."""
    for block in re.split(r"\n\s*\n", text):
        joined = " ".join(block.split())
        if joined:
            yield joined


def sentences(paragraph):
    """A simple splitter: after . ! or ? (and a closing quote), before whitespace and a capital or a quote."""
    return [s for s in re.split(r'(?<=[.!?])["\u201d\']?\s+(?=["\u201c\'A-Z])', paragraph) if s]


def words(sentence):
    return sentence.split()


def bare(word):
    return re.sub(r"[^A-Za-z]", "", word)


def cloze_items(book_sentences, rng):
    """Passages of whole sentences (40 to 120 words) whose last word already occurs earlier in the passage:
    the target is predictable from the context, as LAMBADA's targets are by selection."""
    candidates = []
    # Passages may span paragraphs (dialogue paragraphs are short); they are taken in book order.
    for para in [[s for p in book_sentences for s in p]]:
        for end in range(len(para)):
            passage = []
            for start in range(end, -1, -1):
                passage.insert(0, para[start])
                count = sum(len(words(s)) for s in passage)
                if count >= 40:
                    break
            count = sum(len(words(s)) for s in passage)
            if not 40 <= count <= 120:
                continue
            text = " ".join(passage)
            # Drop the final punctuation and quotes so the last whitespace-separated word is the bare target.
            text = re.sub(r"[^A-Za-z]+$", "", text)
            last = text.split()[-1]
            if not last.isalpha() or len(last) < 3 or last.lower() in STOPWORDS:
                continue
            earlier = {bare(w).lower() for w in text.split()[:-1]}
            if last.lower() in earlier:
                candidates.append({"text": text})
    rng.shuffle(candidates)
    return candidates[:PER_BOOK]


def choice_items(book_sentences, rng):
    """Three consecutive sentences of a paragraph as context; the true next sentence against three sentences
    drawn from elsewhere in the same book (at least 50 sentences away, of a similar length)."""
    flat = [s for para in book_sentences for s in para]
    usable = [i for i, s in enumerate(flat) if 5 <= len(words(s)) <= 40]
    items = []
    index = 0
    for para in book_sentences:
        for i in range(len(para) - 3):
            context, answer = para[i:i + 3], para[i + 3]
            at = index + i + 3
            if not 5 <= len(words(answer)) <= 40 or sum(len(words(s)) for s in context) > 120:
                continue
            pool = [j for j in usable if abs(j - at) >= 50 and flat[j] != answer]
            distractors = [flat[j] for j in rng.sample(pool, 3)]
            choices = [" " + answer] + [" " + d for d in distractors]
            order = list(range(4))
            rng.shuffle(order)
            items.append({"context": " ".join(context), "choices": [choices[k] for k in order], "gold": order.index(0)})
        index += len(para)
    rng.shuffle(items)
    return items[:PER_BOOK]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out", default=str(ROOT / "data" / "eval"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cloze, choice = [], []
    for book in BOOKS:
        text = (ROOT / "data" / "sample" / book).read_text(encoding="utf-8")
        book_sentences = [sentences(p) for p in paragraphs(text)]
        cloze += cloze_items(book_sentences, rng)
        choice += choice_items(book_sentences, rng)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, items in [("cloze.jsonl", cloze), ("next-sentence.jsonl", choice)]:
        with open(out / name, "w", encoding="utf-8", newline="\n") as f:
            for item in items:
                f.write(json.dumps(item, ensure_ascii=False) + "\n")
        print(f"{out / name}: {len(items)} items")


if __name__ == "__main__":
    main()
